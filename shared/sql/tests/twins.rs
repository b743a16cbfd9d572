//! Every TOML example has a SQL twin under `examples/sql/` that gives the same output
//! (`docs/sql.md`, "Twins of the TOML examples"):
//!
//! | TOML example | SQL twin |
//! |---|---|
//! | `reference` | `sql/reference.sql`: the same plan (`oracle.rs` checks the plan and the oracle); the TOML also fixes printed decimals, which plain Flink SQL does not |
//! | `streaming-systems/fixed-batch`, `fixed-watermark-perfect`, `fixed-watermark-heuristic` | `sql/streaming-systems/fixed.sql` (byte-identical) |
//! | `streaming-systems/retracting` | `sql/streaming-systems/retracting.sql`: Flink's emit options, so Flink's on-time behaviour (`if_non_empty`); byte-identical to the TOML with that one setting. `retracting-eventide.sql`: Eventide's options, byte-identical |
//! | `streaming-systems/accumulating`, `aligned-delay-offset`, `allowed-lateness`, `discarding`, `discarding-if-non-empty`, `early-ontime-late`, `per-record-streaming`, `sessions-*` | `sql/streaming-systems/<case>.sql`: Eventide's trigger options (`SET 'eventide.trigger'` …), byte-identical |
//! | `enrichment` | `sql/enrichment.sql`: a lookup join (`JOIN subscribers FOR SYSTEM_TIME AS OF e.proc_time`) in a view; byte-identical, dead letters included: Flink's inner join drops a row without a subscriber, and the lookup table's `'lookup.on-miss' = 'dead-letter'` (an Eventide option) keeps it in the dead letters as the TOML's `on_miss = "dead_letter"` does |
//! | `rolling` | `sql/rolling.sql`: an `OVER` aggregation (a rows window); byte-identical, late rows included |
//! | `rules` | `sql/rules.sql` (no INSERT, `SET 'eventide.rules' = 'rules.toml'`): the same alerts, byte for byte, on a `gen.py` workload |
//! | `framed-zip` | `sql/framed-zip.sql` (Eventide's file options on the source): byte-identical on the example's archive |
//! | `custom-decoder` | `sql/custom-decoder.sql` (`'format' = 'custom'`): with the example's `Decoder` attached, the same panes, late records and dead letters as the inline spec |

use std::io::Write as _;
use std::path::{Path, PathBuf};

use eventide_connectors::replay::{replay, ReplayOptions};
use eventide_engine::enrich::{OnMiss, SourceSpec};
use eventide_engine::spec::OnTime;
use eventide_engine::PipelineSpec;
use eventide_testkit::reference::{self, project_root};
use eventide_testkit::Scratch;

fn examples() -> PathBuf {
    project_root().join("examples")
}

/// The spec of a pipeline file under `examples/` (TOML, or SQL compiled).
fn load(path: &str) -> PipelineSpec {
    eventide_sql::load_pipeline(&examples().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .spec
}

/// Replays the SQL twin `sql` and the TOML `toml` on `input`, and checks that they write the
/// same files byte for byte (`what` names the twin in a failure): their output directories,
/// removed when dropped.
fn replay_twins(
    sql: PipelineSpec,
    toml: PipelineSpec,
    input: &Path,
    what: &str,
) -> (Scratch, Scratch) {
    let a = run(sql, input);
    let b = run(toml, input);
    same_files(&a, &b, what);
    (a, b)
}

fn run(spec: PipelineSpec, input: &Path) -> Scratch {
    let out = Scratch::new("sql-twin");
    let mut opts = ReplayOptions::default();
    if !spec.enrichments.is_empty() {
        // Local tables, loaded as `eventide replay` loads them.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        opts.lookups = rt
            .block_on(eventide_aws::enrichment::Lookups::start(&spec))
            .unwrap()
            .snapshot();
    }
    replay(spec, input, &out, &opts).unwrap();
    out
}

fn same_files(a: &Path, b: &Path, what: &str) {
    let mut names: Vec<_> = std::fs::read_dir(b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names {
        let x = std::fs::read(a.join(&n)).unwrap_or_default();
        let y = std::fs::read(b.join(&n)).unwrap();
        assert!(
            x == y,
            "{what}: {} differs:\n{}\n--- TOML ---\n{}",
            n.to_string_lossy(),
            String::from_utf8_lossy(&x),
            String::from_utf8_lossy(&y)
        );
    }
}

fn twin(sql: &str, case: &str, adjust: impl Fn(&mut PipelineSpec)) {
    let dir = examples().join("streaming-systems").join(case);
    let input = dir.join("input.jsonl");
    let mut t = load(&format!("streaming-systems/{case}/pipeline.toml"));
    adjust(&mut t);
    let (a, _) = replay_twins(
        load(&format!("sql/{sql}")),
        t,
        &input,
        &format!("{sql} on {case}"),
    );
    let rows = std::fs::read_to_string(a.join("scores.csv")).unwrap_or_default();
    assert!(rows.lines().count() > 1, "{sql} on {case}: no rows\n{rows}");
}

/// Makes a file enrichment's relative path (relative to the repository root, where the
/// examples run) absolute.
fn rooted(spec: &mut PipelineSpec) {
    for e in &mut spec.enrichments {
        if let SourceSpec::File { path, .. } = &mut e.source {
            *path = examples()
                .join("..")
                .join(&*path)
                .to_string_lossy()
                .into_owned();
        }
    }
}

#[test]
fn the_enrichment_example_has_a_byte_identical_sql_twin() {
    let mut s = load("sql/enrichment.sql");
    let mut t = load("enrichment/pipeline.toml");
    rooted(&mut s);
    rooted(&mut t);
    assert_eq!(s.enrichments[0].on_miss, OnMiss::DeadLetter);
    let input = examples().join("enrichment/events.jsonl");
    let (a, _) = replay_twins(s, t, &input, "sql/enrichment.sql");
    let rows = std::fs::read_to_string(a.join("by_tier.csv")).unwrap();
    assert!(rows.lines().count() > 1, "{rows}");
}

#[test]
fn the_rolling_example_has_a_byte_identical_sql_twin() {
    let input = examples().join("rolling/events.jsonl");
    let (a, _) = replay_twins(
        load("sql/rolling.sql"),
        load("rolling/pipeline.toml"),
        &input,
        "sql/rolling.sql",
    );
    let rows = std::fs::read_to_string(a.join("rolling.csv")).unwrap();
    let late = std::fs::read_to_string(a.join("rolling.late.jsonl")).unwrap();
    let lines = std::fs::read_to_string(&input).unwrap().lines().count();
    assert_eq!(
        rows.lines().count() - 1 + late.lines().count(),
        lines,
        "{rows}{late}"
    );
    let expected = examples().join("rolling/expected");
    same_files(&a, &expected, "examples/rolling/expected");
}

#[test]
fn fixed_windows_have_a_byte_identical_sql_twin() {
    for case in [
        "fixed-batch",
        "fixed-watermark-perfect",
        "fixed-watermark-heuristic",
    ] {
        twin("streaming-systems/fixed.sql", case, |_| {});
    }
}

/// The cases whose triggers and accumulation only Eventide's options express: each SQL twin
/// is byte-identical to its TOML, with no adjustment.
#[test]
fn eventide_trigger_options_give_every_streaming_systems_case_a_byte_identical_twin() {
    for (sql, case) in [
        ("accumulating", "accumulating"),
        ("aligned-delay-offset", "aligned-delay-offset"),
        ("allowed-lateness", "allowed-lateness"),
        ("discarding", "discarding"),
        ("discarding-if-non-empty", "discarding-if-non-empty"),
        ("early-ontime-late", "early-ontime-late"),
        ("per-record-streaming", "per-record-streaming"),
        ("retracting-eventide", "retracting"),
        ("sessions-early-merge", "sessions-early-merge"),
        (
            "sessions-per-record-accumulating",
            "sessions-per-record-accumulating",
        ),
        (
            "sessions-per-record-retracting",
            "sessions-per-record-retracting",
        ),
        ("sessions-retracting", "sessions-retracting"),
    ] {
        twin(&format!("streaming-systems/{sql}.sql"), case, |_| {});
    }
}

#[test]
fn flink_emit_options_are_the_retracting_case_with_flinks_on_time_behaviour() {
    twin("streaming-systems/retracting.sql", "retracting", |t| {
        t.aggregations[0].on_time = OnTime::IfNonEmpty
    });
}

/// The framed-zip example's archive (its entries in name order, as `make_zip.py` builds it).
fn framed_zip(path: &Path) {
    let dir = examples().join("framed-zip/entries");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for p in names {
        z.start_file(p.file_name().unwrap().to_string_lossy(), opts)
            .unwrap();
        z.write_all(&std::fs::read(&p).unwrap()).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn the_framed_zip_example_has_a_byte_identical_sql_twin() {
    let dir = Scratch::new("sql-twin-zip");
    let zip = dir.join("framed.zip");
    framed_zip(&zip);
    let s = load("sql/framed-zip.sql");
    assert_eq!(s.files.header_lines, 2);
    let (a, _) = replay_twins(
        s,
        load("framed-zip/pipeline.toml"),
        &zip,
        "sql/framed-zip.sql",
    );
    let rows = std::fs::read_to_string(a.join("hourly.csv")).unwrap();
    assert!(rows.lines().count() > 1, "{rows}");
}

#[test]
fn the_rules_example_has_a_byte_identical_sql_twin_with_no_insert() {
    let s = eventide_sql::load_pipeline(&examples().join("sql/rules.sql")).unwrap();
    assert!(s.spec.aggregations.is_empty());
    assert_eq!(s.spec.rules.len(), 2);
    // The plan shows the rules the file adds.
    assert!(s.toml.contains("id = \"three-high\""), "{}", s.toml);
    // A small reference workload.
    let dir = Scratch::new("sql-twin-rules");
    let input = dir.join("events.jsonl");
    reference::generate(20_000, 20, 7, &input);
    let (a, _) = replay_twins(s.spec, load("rules/pipeline.toml"), &input, "sql/rules.sql");
    let alerts = std::fs::read_to_string(a.join("alerts.jsonl")).unwrap();
    assert!(alerts.contains("three-high"), "{alerts}");
}

#[path = "../../../examples/custom-decoder/decoder.rs"]
mod decoder;

/// Panes, late records and dead letters of a run, as text.
#[derive(Default)]
struct Collect(String);

impl eventide_engine::pane::Emit for Collect {
    fn pane(&mut self, p: &eventide_engine::pane::Pane<'_>) {
        self.0.push_str(&format!(
            "{} {} [{}, {}) {:?} {} {:?}\n",
            p.aggregation, p.key, p.window.start, p.window.end, p.timing, p.index, p.values
        ));
    }
}

impl eventide_engine::Output for Collect {
    fn late(&mut self, aggregation: usize, raw: &[u8]) {
        self.0.push_str(&format!("late {aggregation} {raw:?}\n"));
    }
}

/// The binary layout of `examples/custom-decoder`.
fn payment(t: i64, user: &str, amount: f64) -> Vec<u8> {
    let mut b = t.to_be_bytes().to_vec();
    b.push(u8::try_from(user.len()).unwrap());
    b.extend_from_slice(user.as_bytes());
    b.extend_from_slice(&amount.to_be_bytes());
    b
}

fn decode_all(spec: PipelineSpec, records: &[Vec<u8>]) -> String {
    let spec = spec.with_decoder(std::sync::Arc::new(decoder::Binary));
    let mut p = eventide_engine::Pipeline::new(spec);
    let mut out = Collect::default();
    for r in records {
        if let Err(e) = p.process_line(r, "", &mut out) {
            out.0.push_str(&format!("dead letter: {e}\n"));
        }
    }
    p.finish(&mut out);
    out.0
}

#[test]
fn the_custom_decoder_example_has_a_sql_twin_with_the_same_panes() {
    // The example's spec is inline in its main.rs.
    let main = std::fs::read_to_string(examples().join("custom-decoder/main.rs")).unwrap();
    let start = main.find("from_toml(\n        r#\"").unwrap() + "from_toml(\n        r#\"".len();
    let toml = &main[start..start + main[start..].find("\"#").unwrap()];
    let t = PipelineSpec::from_toml(toml).unwrap();
    let s = eventide_sql::load_pipeline(&examples().join("sql/custom-decoder.sql")).unwrap();
    assert!(s.needs_decoder());
    let records = vec![
        payment(1_000, "ann", 2.5),
        payment(30_000, "bob", 1.0),
        b"\x00\x00\x00\x00\x00\x00\x00\x01\x09ann".to_vec(),
        payment(59_000, "ann", 4.0),
        payment(61_000, "ann", 1.0),
        payment(200_000, "bob", 3.0),
        payment(20_000, "ann", 9.0),
    ];
    let a = decode_all(s.spec, &records);
    let b = decode_all(t, &records);
    assert_eq!(a, b);
    assert!(a.contains("dead letter: "), "{a}");
    assert!(a.contains("[0, 60000)"), "{a}");
}
