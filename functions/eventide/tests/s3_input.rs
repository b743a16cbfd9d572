//! `eventide replay --input s3://bucket/prefix/` reads the objects under the prefix in key
//! order through the file layer (a plain and a gzip object here), on local AWS: the same
//! output as the local files, and dead letters naming the object.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use eventide_aws::config::Clients;

const SPEC: &str = r#"
[input]
event_time = { field = "t" }
fields = { k = "string", v = "number" }
[[aggregation]]
name = "sums"
group_by = ["k"]
window = { type = "tumbling", size = "10ms" }
aggregates = [{ name = "sum", fn = "sum", field = "v" }]
sink = { format = "csv", order = "key" }
"#;

fn replay(pipeline: &Path, input: &str, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eventide"))
        .args(["replay", "--pipeline"])
        .arg(pipeline)
        .args(["--input", input, "--out"])
        .arg(out)
        .output()
        .expect("run eventide")
}

#[tokio::test]
async fn replay_reads_an_s3_prefix_in_key_order() {
    eventide_testkit::require_local_aws();
    let clients = Clients::from_env().await;
    let bucket = format!("eventide-s3-input-{}", std::process::id());
    clients
        .s3
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let a = "{\"k\":\"x\",\"v\":1,\"t\":1}\n{\"k\":\"y\",\"v\":2,\"t\":5}\n";
    let b = "{\"k\":\"x\",\"v\":4,\"t\":12}\nnot json\n{\"k\":\"y\",\"v\":8,\"t\":30}\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b.as_bytes()).expect("gzip");
    let objects: [(&str, Vec<u8>); 4] = [
        ("drops/2026-03-02.jsonl.gz", gz.finish().expect("gzip")),
        ("drops/2026-03-01.jsonl", a.as_bytes().to_vec()),
        ("drops/_SUCCESS", Vec::new()),
        (
            "elsewhere/ignored.jsonl",
            b"{\"k\":\"z\",\"v\":99,\"t\":2}\n".to_vec(),
        ),
    ];
    for (key, body) in objects {
        clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("put object");
    }
    let dir = eventide_testkit::Scratch::new("s3-input");
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, SPEC).expect("spec");
    std::fs::write(dir.join("local.jsonl"), format!("{a}{b}")).expect("local");

    let s3 = replay(&pipeline, &format!("s3://{bucket}/drops/"), &dir.join("s3"));
    assert!(
        s3.status.success(),
        "{}",
        String::from_utf8_lossy(&s3.stderr)
    );
    let local = replay(
        &pipeline,
        &dir.join("local.jsonl").display().to_string(),
        &dir.join("local"),
    );
    assert!(local.status.success());
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).expect(p);
    assert_eq!(read("s3/sums.csv"), read("local/sums.csv"));
    assert_eq!(
        read("s3/sums.csv"),
        "k,window_start,window_end,sum\nx,0,10,1\nx,10,20,4\ny,0,10,2\ny,30,40,8\n"
    );
    let dead: serde_json::Value =
        serde_json::from_str(read("s3/dead_letters.jsonl").trim()).expect("one dead letter");
    assert_eq!(
        dead["file"],
        format!("s3://{bucket}/drops/2026-03-02.jsonl.gz")
    );
    assert_eq!(
        (dead["line"].as_u64(), dead["raw"].as_str()),
        (Some(2), Some("not json"))
    );
}
