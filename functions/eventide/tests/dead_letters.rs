//! Malformed lines go to `dead_letters.jsonl` with their line number and reason; the run
//! continues and nothing is lost, in both streaming and key-ordered (by-key and lanes) replays.

use eventide_testkit::Scratch;
use std::path::PathBuf;

use eventide_connectors::replay::{replay, ReplayOptions};
use eventide_engine::PipelineSpec;

/// Runs the replay in a fresh scratch directory; returns it, the output directory, and
/// the counts of events and dead letters.
fn run(order: &str) -> (Scratch, PathBuf, u64, u64) {
    let dir = Scratch::new(&format!("dead-{order}"));
    let input = dir.join("in.jsonl");
    let lines = [
        r#"{"k":"a","v":1,"t":1000}"#,
        r#"{"k":"a","v":"two","t":1001}"#,
        r#"not json at all"#,
        r#"{"k":"b","v":3}"#,
        r#"{"k":"b","v":4,"t":2500}"#,
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let spec = PipelineSpec::from_toml(&format!(
        r#"
        [input]
        event_time = {{ field = "t" }}
        fields = {{ k = "string", v = "number" }}
        [[aggregation]]
        name = "sums"
        group_by = ["k"]
        window = {{ type = "tumbling", size = "1s" }}
        aggregates = [{{ name = "sum", fn = "sum", field = "v" }}]
        sink = {{ format = "csv", order = "{order}" }}
        "#
    ))
    .unwrap();
    let out = dir.join("out");
    let report = replay(spec, &input, &out, &ReplayOptions::default()).unwrap();
    (dir, out, report.events, report.dead_letters)
}

#[test]
fn malformed_lines_are_kept_with_line_and_reason() {
    for order in ["fired", "key"] {
        let (_dir, out, events, dead) = run(order);
        assert_eq!((events, dead), (2, 3), "order {order}");
        let text = std::fs::read_to_string(out.join("dead_letters.jsonl")).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got: Vec<(u64, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["line"].as_u64().unwrap(),
                    r["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got[0].0, 2);
        assert!(
            got[0].1.contains("`v`"),
            "reason names the field: {}",
            got[0].1
        );
        assert_eq!(got[1].0, 3);
        assert_eq!(got[2], (4, "missing field `t`".to_string()));
        assert_eq!(rows[2]["raw"], r#"{"k":"b","v":3}"#);
        let csv = std::fs::read_to_string(out.join("sums.csv")).unwrap();
        assert_eq!(
            csv, "k,window_start,window_end,sum\na,1000,2000,1\nb,2000,3000,4\n",
            "order {order}"
        );
    }
}

#[test]
fn an_input_with_no_valid_line_fails_the_replay() {
    let dir = Scratch::new("all-bad");
    let (input, pipeline) = (dir.join("in.jsonl"), dir.join("p.toml"));
    std::fs::write(&input, "not json\n{\"k\":1}\n").unwrap();
    std::fs::write(
        &pipeline,
        r#"
        [input]
        event_time = { field = "t" }
        fields = { k = "string" }
        [[aggregation]]
        name = "n"
        group_by = ["k"]
        window = { type = "tumbling", size = "1s" }
        aggregates = [{ name = "n", fn = "count" }]
        "#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventide"))
        .args(["replay", "--pipeline"])
        .arg(&pipeline)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("every line of"), "{stderr}");
}

#[test]
fn a_rerun_into_the_same_out_dir_leaves_no_stale_dead_letters() {
    let (dir, out, _, dead) = run("fired");
    assert_eq!(dead, 3);
    assert!(out.join("dead_letters.jsonl").exists());
    let input = dir.join("clean.jsonl");
    std::fs::write(&input, "{\"k\":\"a\",\"v\":1,\"t\":1000}\n").unwrap();
    let spec = PipelineSpec::from_toml(
        r#"
        [input]
        event_time = { field = "t" }
        fields = { k = "string", v = "number" }
        [[aggregation]]
        name = "sums"
        group_by = ["k"]
        window = { type = "tumbling", size = "1s" }
        aggregates = [{ name = "sum", fn = "sum", field = "v" }]
        "#,
    )
    .unwrap();
    let report = replay(spec, &input, &out, &ReplayOptions::default()).unwrap();
    assert_eq!(report.dead_letters, 0);
    assert!(
        !out.join("dead_letters.jsonl").exists(),
        "the earlier run's dead letters are gone"
    );
}
