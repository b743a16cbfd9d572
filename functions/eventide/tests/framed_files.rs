//! The file layer end to end: zip and gzip files, header and footer lines, CSV with a
//! header row, directories and globs; every execution gives the output of the same records
//! as plain JSON lines, and bad input at every layer is an error or a dead letter naming
//! the file, the entry and the line.

use eventide_testkit::Scratch;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use eventide_connectors::replay::{replay, Execution, ReplayOptions, ReplayReport};
use eventide_connectors::ConnectorError;
use eventide_engine::PipelineSpec;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/framed-zip");

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("framed-{name}"))
}

fn write_zip(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        z.start_file(name.as_str(), opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The example's entries, in name order.
fn example_entries() -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(Path::new(EXAMPLE).join("entries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn run(
    spec: &str,
    input: &Path,
    out: &Path,
    execution: Execution,
) -> Result<ReplayReport, ConnectorError> {
    let spec = PipelineSpec::from_toml(spec).unwrap();
    let opts = ReplayOptions {
        execution,
        ..ReplayOptions::default()
    };
    replay(spec, input, out, &opts)
}

/// Every file a replay wrote.
fn outputs(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

const EXECUTIONS: [Execution; 3] = [Execution::Streaming, Execution::Lanes, Execution::ByKey];

/// The example's zip archive replays exactly like its records as plain JSON lines, in
/// every execution.
#[test]
fn the_zip_example_replays_like_plain_json_lines() {
    let dir = scratch("example");
    let archive = dir.join("billing.zip");
    let entries = example_entries();
    assert!(entries.len() > 1, "the example has several entries");
    write_zip(&archive, &entries);
    // The same records without the framing, cut here by hand: 2 banner lines, 1 trailer.
    let mut plain = String::new();
    let mut records = 0;
    for (_, bytes) in &entries {
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for l in &lines[2..lines.len() - 1] {
            plain.push_str(l);
            plain.push('\n');
            records += 1;
        }
    }
    std::fs::write(dir.join("plain.jsonl"), &plain).unwrap();
    let framed_spec = std::fs::read_to_string(Path::new(EXAMPLE).join("pipeline.toml")).unwrap();
    let plain_spec: String = framed_spec
        .lines()
        .filter(|l| {
            !l.starts_with("compression")
                && !l.starts_with("header_lines")
                && !l.starts_with("footer")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(plain_spec, framed_spec);
    for execution in EXECUTIONS {
        let (a, b) = (dir.join("out-zip"), dir.join("out-plain"));
        let r = run(&framed_spec, &archive, &a, execution).unwrap();
        assert_eq!((r.events, r.dead_letters), (records, 0), "{execution:?}");
        run(&plain_spec, &dir.join("plain.jsonl"), &b, execution).unwrap();
        let (za, zb) = (outputs(&a), outputs(&b));
        assert!(za["hourly.csv"].lines().count() > 5, "{execution:?}");
        assert_eq!(za, zb, "{execution:?}");
    }
}

const CSV_SPEC: &str = r#"
[input]
format = "csv"
csv = { header = true, delimiter = ";" }
event_time = { field = "ts" }
fields = { subscriber = "string", value = "number" }
[[aggregation]]
name = "sums"
group_by = ["subscriber"]
window = { type = "tumbling", size = "10s" }
aggregates = [{ name = "total", fn = "sum", field = "value" }, { name = "n", fn = "count" }]
sink = { format = "csv", order = "key" }
"#;

const JSON_SPEC: &str = r#"
[input]
event_time = { field = "ts" }
fields = { subscriber = "string", value = "number" }
[[aggregation]]
name = "sums"
group_by = ["subscriber"]
window = { type = "tumbling", size = "10s" }
aggregates = [{ name = "total", fn = "sum", field = "value" }, { name = "n", fn = "count" }]
sink = { format = "csv", order = "key" }
"#;

/// Gzip files of CSV with a header row, in a directory and through a glob, give the output
/// of the same records as JSON lines; columns may come in any order, quoted or not.
#[test]
fn gzip_csv_with_a_header_row_equals_json_lines() {
    let dir = scratch("csv");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut json = String::new();
    for part in 0..3 {
        let mut csv = String::from("note;ts;value;subscriber\n");
        for i in 0..40 {
            let t = part * 40_000 + i * 1_000 + 7;
            let sub = ["ann", "bob;x", "c\"d"][(i as usize) % 3];
            let v = (i % 7) as f64 * 1.5;
            let quoted = sub.replace('"', "\"\"");
            csv.push_str(&format!("\"free; \"\"text\"\"\";{t};{v};\"{quoted}\"\n"));
            json.push_str(&format!(
                "{{\"subscriber\":{},\"value\":{v},\"ts\":{t}}}\n",
                serde_json::to_string(sub).unwrap()
            ));
        }
        std::fs::write(
            input.join(format!("part-{part}.csv.gz")),
            gzip(csv.as_bytes()),
        )
        .unwrap();
    }
    std::fs::write(dir.join("plain.jsonl"), json).unwrap();
    let want_out = dir.join("want");
    run(
        JSON_SPEC,
        &dir.join("plain.jsonl"),
        &want_out,
        Execution::Streaming,
    )
    .unwrap();
    let want = outputs(&want_out);
    let glob = input.join("part-*.csv.gz");
    for (input, execution) in [
        (&input, Execution::Streaming),
        (&input, Execution::ByKey),
        (&glob, Execution::Lanes),
    ] {
        let out = dir.join("got");
        let r = run(CSV_SPEC, input, &out, execution).unwrap();
        assert_eq!((r.events, r.dead_letters), (120, 0), "{execution:?}");
        assert_eq!(outputs(&out), want, "{execution:?}");
    }
}

/// The dead letters of every execution, as (file, entry, line, reason, raw or base64).
fn dead_letters(out: &Path) -> Vec<(String, String, u64, String, String)> {
    let text = std::fs::read_to_string(out.join("dead_letters.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            let raw = if v.get("raw_base64").is_some() {
                format!("base64:{}", s("raw_base64"))
            } else {
                s("raw")
            };
            (
                s("file"),
                s("entry"),
                v["line"].as_u64().unwrap(),
                s("reason"),
                raw,
            )
        })
        .collect()
}

/// A CSV row with the wrong number of fields or with invalid UTF-8 in a field is a dead
/// letter naming the file, the entry and the line, with the original bytes; the other
/// records run.
#[test]
fn bad_csv_rows_are_dead_letters_naming_file_entry_and_line() {
    let dir = scratch("bad-rows");
    let archive = dir.join("drop.zip");
    let spec = CSV_SPEC.replace(
        "csv = { header = true, delimiter = \";\" }",
        "csv = { header = true, delimiter = \";\" }\ncompression = \"zip\"\nheader_lines = 1\nfooter = { pattern = '^END (?P<count>\\d+)$' }",
    );
    let a = "BANNER\nnote;ts;value;subscriber\nx;1000;1;ann\nx;2000;2\nx;3000;3;bob\nEND 3\n";
    let b =
        b"BANNER\nnote;ts;value;subscriber\nx;4000;4;b\xffob\n\xfe;5000;5;ann\nEND 2\n".to_vec();
    write_zip(
        &archive,
        &[("a.csv".into(), a.as_bytes().to_vec()), ("b.csv".into(), b)],
    );
    let file = archive.display().to_string();
    let want = vec![
        (
            file.clone(),
            "a.csv".to_string(),
            4,
            "not a valid CSV row: expected 4 fields, got 3".to_string(),
            "x;2000;2".to_string(),
        ),
        (
            file.clone(),
            "b.csv".to_string(),
            3,
            "field `subscriber`: not valid UTF-8".to_string(),
            "base64:eDs0MDAwOzQ7Yv9vYg==".to_string(),
        ),
    ];
    for execution in EXECUTIONS {
        let out = dir.join("out");
        let r = run(&spec, &archive, &out, execution).unwrap();
        // Invalid UTF-8 in a column the pipeline does not read (`note`) is not an error.
        assert_eq!((r.events, r.dead_letters), (3, 2), "{execution:?}");
        assert_eq!(dead_letters(&out), want, "{execution:?}");
    }
}

/// Each broken layout stops the run with an error naming the file (and the entry and the
/// line where they apply) and the setting to raise for a bound.
#[test]
fn broken_files_are_errors_naming_the_place() {
    let dir = scratch("broken");
    let framed = std::fs::read_to_string(Path::new(EXAMPLE).join("pipeline.toml")).unwrap();
    let entries = example_entries();
    let good = dir.join("good.zip");
    write_zip(&good, &entries);
    let good_bytes = std::fs::read(&good).unwrap();
    let err = |name: &str, bytes: &[u8], spec: &str| -> String {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = run(spec, &path, &dir.join("out"), Execution::Auto)
            .expect_err(name)
            .to_string();
        assert!(
            e.contains(&path.display().to_string()),
            "names the file: {e}"
        );
        e
    };
    // A corrupt zip, and a zip cut short.
    let e = err(
        "garbage.zip",
        b"PK\x03\x04 this is not a zip archive",
        &framed,
    );
    assert!(e.contains("zip"), "{e}");
    let e = err("cut.zip", &good_bytes[..good_bytes.len() / 2], &framed);
    assert!(e.contains("zip"), "{e}");
    // A zip whose entry's bytes are damaged: the CRC or the inflater says so.
    let mut damaged = good_bytes.clone();
    let at = damaged.len() / 4;
    for b in &mut damaged[at..at + 16] {
        *b ^= 0x5a;
    }
    let e = err("damaged.zip", &damaged, &framed);
    assert!(e.contains("entry"), "{e}");

    // A gzip that ends early.
    let json = JSON_SPEC.replace("[input]", "[input]\ncompression = \"gzip\"");
    let gz = gzip(
        b"{\"subscriber\":\"a\",\"value\":1,\"ts\":1}\n"
            .repeat(500)
            .as_slice(),
    );
    let e = err("short.jsonl.gz", &gz[..gz.len() - 12], &json);
    assert!(e.contains("gzip"), "{e}");

    // A footer whose count disagrees, and a footer missing: file, entry and line.
    let mut wrong = entries.clone();
    let text = String::from_utf8(wrong[1].1.clone()).unwrap();
    let n = text.lines().count();
    wrong[1].1 = text
        .replace("TRAILER records=", "TRAILER records=1")
        .into_bytes();
    write_zip(&dir.join("count.zip"), &wrong);
    let e = run(
        &framed,
        &dir.join("count.zip"),
        &dir.join("out"),
        Execution::Auto,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(&format!("entry {:?}, line {n}", wrong[1].0))
            && e.contains("the footer declares 1"),
        "{e}"
    );
    let mut missing = entries.clone();
    let text = String::from_utf8(missing[2].1.clone()).unwrap();
    let cut: Vec<&str> = text.lines().filter(|l| !l.starts_with("TRAILER")).collect();
    missing[2].1 = (cut.join("\n") + "\n").into_bytes();
    write_zip(&dir.join("missing.zip"), &missing);
    let e = run(
        &framed,
        &dir.join("missing.zip"),
        &dir.join("out"),
        Execution::Auto,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(&format!("entry {:?}, line {}", missing[2].0, cut.len()))
            && e.contains("the footer is missing"),
        "{e}"
    );

    // A zip bomb: an entry that inflates past max_entry_bytes.
    let bomb = dir.join("bomb.zip");
    write_zip(&bomb, &[("zeros.txt".into(), vec![b' '; 4 << 20])]);
    let small = framed.replace("[input]", "[input]\nmax_entry_bytes = 1048576");
    let e = run(&small, &bomb, &dir.join("out"), Execution::Auto)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("zeros.txt") && e.contains("input.max_entry_bytes"),
        "{e}"
    );
    let e = err(
        "bomb.jsonl.gz",
        &gzip(&vec![b' '; 4 << 20]),
        &small.replace("\"zip\"", "\"gzip\""),
    );
    assert!(e.contains("input.max_entry_bytes"), "{e}");

    // A line over max_line_bytes, in a plain file and in an entry.
    let short = JSON_SPEC.replace("[input]", "[input]\nmax_line_bytes = 64");
    let long = format!(
        "{{\"subscriber\":\"a\",\"value\":1,\"ts\":1}}\n{{\"subscriber\":\"{}\",\"value\":1,\"ts\":2}}\n",
        "x".repeat(100)
    );
    for execution in EXECUTIONS {
        let path = dir.join("long.jsonl");
        std::fs::write(&path, &long).unwrap();
        let e = run(&short, &path, &dir.join("out"), execution)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("input.max_line_bytes"),
            "{execution:?}: {e}"
        );
    }
    let e = err("long.jsonl.gz", &gzip(long.as_bytes()), &short);
    assert!(
        e.contains("line 2") && e.contains("input.max_line_bytes"),
        "{e}"
    );

    // A CSV header row that differs from the declared columns.
    let declared = CSV_SPEC.replace(
        "header = true,",
        "header = true, columns = [\"note\", \"ts\", \"value\", \"subscriber\"],",
    );
    let e = err(
        "cols.csv",
        b"note;ts;amount;subscriber\nx;1;2;a\n",
        &declared,
    );
    assert!(e.contains("line 1") && e.contains("amount"), "{e}");
}
