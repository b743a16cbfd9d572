//! Every way of running a replay (`--execution`) writes the same bytes: key by key,
//! lanes (the keys split by hash over threads) and one streaming thread, on the reference workload with its late
//! records, and on a pipeline with early and late firings and retractions. A way that the
//! input or the pipeline can't use is a clear error, never a silent fallback.

use eventide_testkit::Scratch;
use std::path::{Path, PathBuf};

use eventide_connectors::error::ConnectorError;
use eventide_connectors::replay::{replay, Execution, ReplayOptions};
use eventide_engine::PipelineSpec;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn work(tag: &str) -> Scratch {
    Scratch::new(&format!("exec-{tag}"))
}

/// The files of a directory, by name, with their bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Runs `spec` over `input` in each way and checks that they all write the same files.
fn same_files(spec: &PipelineSpec, input: &Path, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut first: Option<Vec<(String, Vec<u8>)>> = None;
    let mut counts = None;
    let wall = ReplayOptions::default().wall_ms();
    for (name, execution) in [
        ("by-key", Execution::ByKey),
        ("lanes", Execution::Lanes),
        ("streaming", Execution::Streaming),
    ] {
        let out = dir.join(name);
        let opts = ReplayOptions {
            execution,
            // One wall clock for every way: a dead letter's reason quotes it.
            wall_ms: Some(wall),
            ..ReplayOptions::default()
        };
        let r = replay(spec.clone(), input, &out, &opts).unwrap();
        // The report counts the same in every way: lines, events, control lines, dead letters.
        let c = (r.lines, r.events, r.controls, r.dead_letters);
        assert_eq!(*counts.get_or_insert(c), c, "{name}: the report's counts");
        let got = files(&out);
        match &first {
            None => first = Some(got),
            Some(want) => {
                let names =
                    |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
                assert_eq!(names(&got), names(want), "{name}: the same files");
                for ((file, a), (_, b)) in got.iter().zip(want) {
                    assert!(a == b, "{name}: {file} differs from the key-by-key run's");
                }
            }
        }
    }
    first.unwrap_or_default()
}

#[test]
fn reference_workload_gives_the_same_bytes_every_way() {
    let dir = work("reference");
    let input = dir.join("events.jsonl");
    eventide_testkit::reference::generate(20_000, 300, 5, &input);
    let spec = PipelineSpec::from_toml(
        &std::fs::read_to_string(root().join("examples/reference/pipeline.toml")).unwrap(),
    )
    .unwrap();
    let out = same_files(&spec, &input, &dir);
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    for q in ["q1.csv", "q2.csv", "q3.csv", "q4.csv"] {
        assert!(names.contains(&q), "{q} written: {names:?}");
    }
    assert!(
        names.iter().any(|n| n.ends_with(".late.jsonl")),
        "the workload has records too late for some window: {names:?}"
    );
}

#[test]
fn early_late_and_retracting_panes_are_the_same_every_way() {
    let dir = work("panes");
    let input = dir.join("events.jsonl");
    let mut lines = Vec::new();
    for i in 0..400i64 {
        // Keys in no order, event times out of order, a processing-time advance every 25.
        let t = (i * 37) % 500 * 100 + if i % 10 == 0 { -20_000 } else { 0 };
        lines.push(format!(
            r#"{{"k":"k{}","v":{},"t":{}}}"#,
            (i * 7) % 13,
            i % 9,
            t.max(0)
        ));
        if i % 25 == 24 {
            lines.push(format!(
                r#"{{"advance_processing_time":{}}}"#,
                (i + 1) * 1_000
            ));
        }
    }
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let spec = PipelineSpec::from_toml(
        r#"
        [input]
        event_time = { field = "t" }
        fields = { k = "string", v = "number" }
        [watermark]
        strategy = "bounded"
        max_out_of_orderness = "5s"
        [[aggregation]]
        name = "sliding"
        group_by = ["k"]
        window = { type = "sliding", size = "10s", slide = "5s" }
        aggregates = [{ name = "sum", fn = "sum", field = "v" }, { name = "n", fn = "count" }]
        trigger = { early = { every = 3 }, late = "every" }
        allowed_lateness = "15s"
        accumulation = "retracting"
        sink = { format = "csv", order = "key" }
        [[aggregation]]
        name = "sessions"
        group_by = ["k"]
        window = { type = "session", gap = "3s" }
        aggregates = [{ name = "max", fn = "max", field = "v" }]
        trigger = { early = { after = "2s" }, late = { after = "1s" } }
        allowed_lateness = "10s"
        accumulation = "retracting"
        sink = { format = "csv", order = "key" }
        "#,
    )
    .unwrap();
    let out = same_files(&spec, &input, &dir);
    let sliding = String::from_utf8_lossy(&out.iter().find(|(n, _)| n == "sliding.csv").unwrap().1)
        .into_owned();
    for timing in ["EARLY", "ON_TIME", "LATE", "true"] {
        assert!(sliding.contains(timing), "sliding.csv has {timing} rows");
    }
}

#[test]
fn a_way_that_does_not_fit_is_an_error() {
    let dir = work("errors");
    let input = dir.join("events.jsonl");
    std::fs::write(&input, "{\"k\":\"a\",\"v\":1,\"t\":1}\n").unwrap();
    let spec = |order: &str| {
        PipelineSpec::from_toml(&format!(
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
        .unwrap()
    };
    let run = |spec: PipelineSpec, input: &Path, execution| {
        let opts = ReplayOptions {
            execution,
            ..ReplayOptions::default()
        };
        replay(spec, input, &dir.join("out"), &opts)
    };
    for execution in [Execution::ByKey, Execution::Lanes] {
        match run(spec("fired"), &input, execution) {
            Err(ConnectorError::Unsupported(msg)) => assert!(msg.contains("key order"), "{msg}"),
            other => panic!("{execution:?} with a firing-order sink: {other:?}"),
        }
        match run(spec("key"), Path::new("-"), execution) {
            Err(ConnectorError::Unsupported(msg)) => assert!(msg.contains("stdin"), "{msg}"),
            other => panic!("{execution:?} on stdin: {other:?}"),
        }
    }
    let report = run(spec("fired"), &input, Execution::Streaming).unwrap();
    assert_eq!(report.events, 1);
}

/// The reference workload's events, generated.
fn reference_events(dir: &Path, n: u32) -> Vec<String> {
    let input = dir.join("generated.jsonl");
    eventide_testkit::reference::generate(u64::from(n), 300, 7, &input);
    let text = std::fs::read_to_string(&input).unwrap();
    text.lines().map(str::to_string).collect()
}

#[test]
fn a_record_dated_in_2100_is_a_dead_letter_and_moves_no_watermark() {
    let dir = work("future");
    let clean = reference_events(&dir, 20_000);
    let spec = PipelineSpec::from_toml(
        &std::fs::read_to_string(root().join("examples/reference/pipeline.toml")).unwrap(),
    )
    .unwrap();
    let clean_path = dir.join("clean.jsonl");
    std::fs::write(&clean_path, clean.join("\n") + "\n").unwrap();
    let want = same_files(&spec, &clean_path, &dir.join("clean"));

    let poison =
        r#"{"subscriber_id":"s000001","counter":"x","value":1.00,"event_time":4102444800000}"#;
    let mut lines = clean.clone();
    lines.insert(5_000, poison.to_string());
    let poisoned = dir.join("poisoned.jsonl");
    std::fs::write(&poisoned, lines.join("\n") + "\n").unwrap();
    let got = same_files(&spec, &poisoned, &dir.join("poisoned"));

    // Every output is the clean run's, plus one dead letter: line 5001, with its reason.
    let without_dead: Vec<_> = got
        .iter()
        .filter(|(n, _)| n != "dead_letters.jsonl")
        .cloned()
        .collect();
    assert!(
        without_dead == want,
        "the poisoned run's outputs equal the clean run's"
    );
    let dead = got
        .iter()
        .find(|(n, _)| n == "dead_letters.jsonl")
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .expect("dead_letters.jsonl written");
    let rows: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{dead}");
    assert_eq!(rows[0]["line"], 5_001);
    assert_eq!(rows[0]["raw"], poison);
    let reason = rows[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("2100-01-01T00:00:00Z") && reason.contains("max_future_skew"),
        "{reason}"
    );
}

#[test]
fn the_future_guard_measures_against_the_inputs_processing_time() {
    let dir = work("future-time");
    let spec = |skew: &str| {
        PipelineSpec::from_toml(&format!(
            r#"
            [input]
            event_time = {{ field = "t" }}
            fields = {{ k = "string", v = "number" }}
            [watermark]
            max_out_of_orderness = "0ms"
            max_future_skew = "{skew}"
            [[aggregation]]
            name = "sums"
            group_by = ["k"]
            window = {{ type = "tumbling", size = "100s" }}
            aggregates = [{{ name = "sum", fn = "sum", field = "v" }}]
            sink = {{ format = "csv", order = "key" }}
            "#
        ))
        .unwrap()
    };
    let input = dir.join("events.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"advance_processing_time":1000}"#,
            r#"{"k":"a","v":1,"t":5000}"#,
            r#"{"k":"a","v":2,"t":20000}"#,
            r#"{"advance_processing_time":30000}"#,
            r#"{"k":"a","v":4,"t":20000}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let dead = |out: &[(String, Vec<u8>)]| {
        out.iter()
            .find(|(n, _)| n == "dead_letters.jsonl")
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
    };
    // 10 s of skew: the record at 20 s is 19 s ahead of processing time 1 s, then 10 s
    // behind 30 s.
    let out = same_files(&spec("10s"), &input, &dir.join("guarded"));
    let d = dead(&out).expect("a dead letter");
    assert_eq!(d.lines().count(), 1, "{d}");
    assert!(d.contains(r#""line":3"#) && d.contains("19s ahead"), "{d}");
    let sums =
        String::from_utf8_lossy(&out.iter().find(|(n, _)| n == "sums.csv").unwrap().1).into_owned();
    assert!(
        sums.contains(",5,") || sums.contains(",5\n"),
        "1 + 4: {sums}"
    );
    // Off: every record counts.
    let out = same_files(&spec("off"), &input, &dir.join("off"));
    assert_eq!(dead(&out), None);
    let sums =
        String::from_utf8_lossy(&out.iter().find(|(n, _)| n == "sums.csv").unwrap().1).into_owned();
    assert!(
        sums.contains(",7,") || sums.contains(",7\n"),
        "1 + 2 + 4: {sums}"
    );
}

/// Issue 10: group-by values that differ only in where U+001F falls, or a missing field
/// and `""`, are different groups, in every execution, in CSV and in JSON lines.
#[test]
fn group_keys_never_collide() {
    let dir = work("keys");
    let input = dir.join("events.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"a":"x\u001fy","b":"z","v":1,"t":1}"#,
            r#"{"a":"x","b":"y\u001fz","v":2,"t":2}"#,
            r#"{"b":"z","v":4,"t":3}"#,
            r#"{"a":"","b":"z","v":8,"t":4}"#,
            r#"{"a":"\u001b0","b":"z","v":16,"t":5}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let spec = |format: &str| {
        PipelineSpec::from_toml(&format!(
            r#"
            [input]
            event_time = {{ field = "t" }}
            fields = {{ a = "string", b = "string", v = "number" }}
            [[aggregation]]
            name = "sums"
            group_by = ["a", "b"]
            window = {{ type = "tumbling", size = "1s" }}
            aggregates = [{{ name = "sum", fn = "sum", field = "v" }}]
            sink = {{ format = "{format}", order = "key" }}
            "#
        ))
        .unwrap()
    };
    let out = same_files(&spec("jsonl"), &input, &dir.join("jsonl"));
    let text = String::from_utf8_lossy(&out.iter().find(|(n, _)| n == "sums.jsonl").unwrap().1)
        .into_owned();
    let mut rows: Vec<(serde_json::Value, serde_json::Value, f64)> = text
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            (r["a"].clone(), r["b"].clone(), r["sum"].as_f64().unwrap())
        })
        .collect();
    rows.sort_by(|x, y| x.2.total_cmp(&y.2));
    let s = |v: &str| serde_json::Value::from(v);
    assert_eq!(
        rows,
        vec![
            (s("x\u{1f}y"), s("z"), 1.0),
            (s("x"), s("y\u{1f}z"), 2.0),
            (serde_json::Value::Null, s("z"), 4.0),
            (s(""), s("z"), 8.0),
            (s("\u{1b}0"), s("z"), 16.0),
        ],
        "five groups, each with its own values: {text}"
    );
    // In CSV a null value is an empty field and "" a quoted empty one: five rows, each with
    // as many fields as the header.
    let out = same_files(&spec("csv"), &input, &dir.join("csv"));
    let text =
        String::from_utf8_lossy(&out.iter().find(|(n, _)| n == "sums.csv").unwrap().1).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines.contains(&",z,0,1000,4") && lines.contains(&"\"\",z,0,1000,8"),
        "{text}"
    );
}
