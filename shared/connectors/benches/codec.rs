//! Decode throughput in events/s of the one codec, per format and file layout, against
//! plain JSON lines read as today (a plain file, streamed): JSON lines in memory, CSV rows
//! (plain, and every field quoted), and files through the file layer: gzip, and a zip
//! archive of 8 entries each with 2 header lines and a counted footer. The best of 3 runs;
//! the events are the reference workload's shape (subscriber, counter, value, time).
//!
//! `cargo bench -p eventide-connectors --bench codec` (`CODEC_EVENTS` for another size,
//! 1,000,000 by default).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use eventide_connectors::input::{InputFile, InputSource};
use eventide_connectors::lines::Lines;
use eventide_connectors::sources::file::FileSource;
use eventide_connectors::sources::LineSource;
use eventide_engine::codec::Codec;
use eventide_engine::PipelineSpec;

const JSON: &str = r#"
[input]
event_time = { field = "event_time" }
fields = { subscriber_id = "string", counter = "string", value = "number" }
[[aggregation]]
name = "a"
group_by = ["subscriber_id"]
window = { type = "global" }
aggregates = [{ name = "n", fn = "count" }]
"#;

fn spec(input_extra: &str, format: &str) -> PipelineSpec {
    let text = JSON.replace("[input]", &format!("[input]\n{format}\n{input_extra}"));
    PipelineSpec::from_toml(&text).expect("spec")
}

/// The best time of 3 runs of `f`, which returns the events it decoded.
fn best(name: &str, events: usize, mut f: impl FnMut() -> usize) {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let n = f();
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(n, events, "{name}: every event decodes");
    }
    println!("{name}_events_per_second: {:.0}", events as f64 / best);
}

fn decode_all(codec: &Codec, text: &[u8]) -> usize {
    let mut n = 0;
    for l in Lines::new(text, 1 << 20) {
        let l = l.expect("line");
        if codec.decode(l.text).is_ok() {
            n += 1;
        }
    }
    n
}

fn drain(codec: &Codec, src: &mut dyn LineSource) -> usize {
    let mut n = 0;
    while let Some((_, raw)) = src.next_line().expect("read") {
        if codec.decode(raw).is_ok() {
            n += 1;
        }
    }
    n
}

fn main() {
    let events: usize = std::env::var("CODEC_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("eventide-codec-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let (mut json, mut csv, mut quoted) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..events {
        let (sub, counter) = (
            format!("s{:05}", (i * 7919) % 20_000),
            ["data", "voice", "sms"][i % 3],
        );
        let (value, t) = (
            (i % 1000) as f64 / 4.0,
            1_767_225_600_000i64 + (i as i64) * 50,
        );
        writeln!(
            json,
            r#"{{"subscriber_id":"{sub}","counter":"{counter}","value":{value},"event_time":{t}}}"#
        )
        .expect("write");
        writeln!(csv, "{t},{sub},{counter},{value}").expect("write");
        writeln!(quoted, r#""{t}","{sub}","{counter}","{value}""#).expect("write");
    }
    let json_spec = spec("", "format = \"json\"");
    let csv_spec = spec(
        "",
        "format = \"csv\"\ncsv = { columns = [\"event_time\", \"subscriber_id\", \"counter\", \"value\"] }",
    );
    let (json_codec, csv_codec) = (Codec::new(&json_spec), Codec::new(&csv_spec));
    println!("events: {events}");

    // Today's path: a plain JSON-lines file, streamed.
    let plain = dir.join("events.jsonl");
    std::fs::write(&plain, &json).expect("write");
    best("json_lines_file", events, || {
        let mut src = FileSource::open(&plain).expect("open");
        drain(&json_codec, &mut src)
    });
    best("json_in_memory", events, || decode_all(&json_codec, &json));
    best("csv_in_memory", events, || decode_all(&csv_codec, &csv));
    best("csv_quoted_in_memory", events, || {
        decode_all(&csv_codec, &quoted)
    });

    // Gzip: the whole file as one member.
    let gz = dir.join("events.jsonl.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&json).expect("gzip");
    std::fs::write(&gz, e.finish().expect("gzip")).expect("write");
    best("json_gzip_file", events, || {
        let mut src = InputSource::open(vec![InputFile::local(&gz)], &json_spec).expect("open");
        drain(&json_codec, &mut src)
    });

    // Zip: 8 entries, each with a 2-line header and a footer that declares its count.
    let zip_path = dir.join("events.zip");
    write_framed_zip(&zip_path, &json, 8);
    let framed = spec(
        "compression = \"zip\"\nheader_lines = 2\nfooter = { pattern = '^TRAILER (?P<count>\\d+)$' }",
        "format = \"json\"",
    );
    best("json_zip_header_footer_file", events, || {
        let mut src = InputSource::open(vec![InputFile::local(&zip_path)], &framed).expect("open");
        drain(&json_codec, &mut src)
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn write_framed_zip(path: &Path, json: &[u8], entries: usize) {
    let lines: Vec<&[u8]> = json
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let per = lines.len().div_ceil(entries);
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).expect("zip"));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (i, chunk) in lines.chunks(per).enumerate() {
        z.start_file(format!("part-{i:02}.txt"), opts)
            .expect("entry");
        writeln!(z, "EXPORT v1\ngenerated by the codec bench").expect("write");
        for l in chunk {
            z.write_all(l).expect("write");
            z.write_all(b"\n").expect("write");
        }
        writeln!(z, "TRAILER {}", chunk.len()).expect("write");
    }
    z.finish().expect("zip");
}
