//! Eventide's own SQL options (`SET 'eventide.…'`, the source's `'eventide.…'` options,
//! `'format' = 'custom'`): what they compile to, how they are scoped, and their errors, each
//! with its line and column.

use common::{assert_errors, error};
use eventide_engine::spec::{AccumulationMode, OnTime};
use eventide_engine::trigger::Trigger;

mod common;

const SOURCE: &str = "CREATE TABLE events (k STRING, v DOUBLE, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'filesystem', 'path' = 'in.jsonl', 'format' = 'json');
CREATE TABLE a (k STRING, window_start BIGINT, window_end BIGINT, n BIGINT)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
CREATE TABLE b (k STRING, window_start BIGINT, window_end BIGINT, n BIGINT)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
";

fn insert(sink: &str) -> String {
    format!(
        "INSERT INTO {sink} SELECT k, window_start, window_end, COUNT(*) \
         FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) \
         GROUP BY k, window_start, window_end;\n"
    )
}

fn compile(text: &str) -> eventide_sql::Compiled {
    eventide_sql::compile(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn trigger_options_set_the_aggregation_as_the_toml_keys_do() {
    let c = compile(&format!(
        "SET 'eventide.trigger' = 'watermark(early = every(1m), late = count(1))';
SET 'eventide.allowed-lateness' = '1 h';
SET 'eventide.accumulation' = 'accumulating';
SET 'eventide.on-time' = 'if_non_empty';
{SOURCE}{}",
        insert("a")
    ));
    let a = &c.spec.aggregations[0];
    assert_eq!(
        a.trigger,
        Trigger::parse("watermark(early = every(1m), late = count(1))").unwrap()
    );
    assert_eq!(a.allowed_lateness_ms, 3_600_000);
    assert_eq!(a.accumulation, AccumulationMode::Accumulating);
    assert_eq!(a.on_time, OnTime::IfNonEmpty);
    assert!(
        c.toml
            .contains("trigger = \"watermark(early = every(1m), late = count(1))\""),
        "{}",
        c.toml
    );
}

/// As Flink's SET, an option applies to the INSERTs after it: two INSERTs of one job can
/// have different triggers.
#[test]
fn a_set_applies_to_the_inserts_after_it() {
    let c = compile(&format!(
        "{SOURCE}{}SET 'eventide.trigger' = 'repeat(count(1))';
SET 'eventide.allowed-lateness' = '1 d';
SET 'eventide.accumulation' = 'discarding';
{}",
        insert("a"),
        insert("b")
    ));
    let [a, b] = c.spec.aggregations.as_slice() else {
        panic!("two aggregations")
    };
    assert_eq!(a.trigger, Trigger::default());
    assert_eq!(a.allowed_lateness_ms, 0);
    assert_eq!(b.trigger, Trigger::parse("repeat(count(1))").unwrap());
    assert_eq!(b.allowed_lateness_ms, 86_400_000);
    assert_eq!(b.accumulation, AccumulationMode::Discarding);
}

#[test]
fn eventide_options_are_errors_at_their_place() {
    let after_insert = format!(
        "{SOURCE}{}SET 'eventide.accumulation' = 'accumulating';\n",
        insert("a")
    );
    let cases: Vec<(String, u64, u64, &str)> = vec![
        // The trigger parser's column, inside the quoted value.
        (
            format!("SET 'eventide.trigger' = 'repeat(cuont(1))';\n{SOURCE}{}", insert("a")),
            1, 34, "unknown trigger `cuont`",
        ),
        (
            format!("SET 'eventide.accumulation' = 'sometimes';\n{SOURCE}{}", insert("a")),
            1, 31, "use 'discarding', 'accumulating' or 'retracting'",
        ),
        (
            format!("SET 'eventide.on-time' = 'never';\n{SOURCE}{}", insert("a")),
            1, 26, "'always'",
        ),
        (
            format!("SET 'eventide.allowed-lateness' = 'soon';\n{SOURCE}{}", insert("a")),
            1, 35, "expected a duration",
        ),
        (
            format!("SET 'eventide.triger' = 'never';\n{SOURCE}{}", insert("a")),
            1, 5, "not an Eventide option",
        ),
        // Combined with Flink's emit options, which fix accumulation and on-time panes.
        (
            format!(
                "SET 'table.exec.emit.early-fire.enabled' = 'true';
SET 'table.exec.emit.early-fire.delay' = '1 min';
SET 'eventide.accumulation' = 'discarding';
{SOURCE}{}",
                insert("a")
            ),
            3, 5, "use one or the other",
        ),
        // A SET after the last INSERT would apply to nothing.
        (after_insert, 9, 5, "comes after the last INSERT"),
        // Late firings need lateness: the spec's check, at the INSERT.
        (
            format!(
                "SET 'eventide.trigger' = 'watermark(late = count(1))';\n{SOURCE}{}",
                insert("a")
            ),
            9, 1, "allowed_lateness",
        ),
        // The file options are the filesystem source's.
        (
            "CREATE TABLE events (k STRING, event_time BIGINT, ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts) WITH ('connector' = 'kinesis', 'stream' = 's',
  'eventide.header-lines' = '2');
CREATE TABLE a (k STRING, window_start BIGINT, window_end BIGINT, n BIGINT)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
".to_string() + &insert("a"),
            3, 29, "'eventide.header-lines'",
        ),
        (
            SOURCE.replace("'format' = 'json')", "'format' = 'json', 'eventide.compression' = 'rar')")
                + &insert("a"),
            3, 102, "use 'zip', 'gzip'",
        ),
        (
            SOURCE.replace("'format' = 'json')", "'format' = 'json', 'eventide.header-lines' = 'two')")
                + &insert("a"),
            3, 103, "expected a whole number",
        ),
        // An invalid footer pattern: the spec's regex error, at the option.
        (
            SOURCE.replace("'format' = 'json')", "'format' = 'json', 'eventide.footer-pattern' = '(')")
                + &insert("a"),
            3, 105, "input.footer.pattern",
        ),
        // Rules on S3 are the consumer's --rules-s3.
        (
            format!("SET 'eventide.rules' = 's3://b/rules.toml';\n{SOURCE}"),
            1, 5, "--rules-s3",
        ),
        // Rules from a file that does not exist, and no INSERT.
        (
            format!("SET 'eventide.rules' = 'no-such-rules.toml';\n{SOURCE}"),
            1, 5, "cannot read the rules file",
        ),
    ];
    assert_errors("", &cases);
}

#[test]
fn a_pipeline_without_an_insert_needs_rules() {
    let e = eventide_sql::compile(SOURCE).unwrap_err().to_string();
    assert!(e.contains("no INSERT INTO"), "{e}");
    assert!(e.contains("eventide.rules"), "{e}");
}

/// A scratch directory with a SQL file and a rules file beside it.
fn scratch(name: &str, rules: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("eventide-sql-ext-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rules.toml"), rules).unwrap();
    std::fs::write(
        dir.join("job.sql"),
        format!("SET 'eventide.rules' = 'rules.toml';\n{SOURCE}"),
    )
    .unwrap();
    dir
}

#[test]
fn a_rules_file_is_read_beside_the_sql_file_and_validated_with_the_spec() {
    let dir = scratch(
        "ok",
        "[[rule]]\nid = \"busy\"\nkey = [\"k\"]\nwhen = 'count(1h) > 100'\nevery = \"15m\"\n",
    );
    let p = eventide_sql::load_pipeline(&dir.join("job.sql")).unwrap();
    assert_eq!(p.spec.rules.len(), 1);
    assert_eq!(p.spec.rules[0].id, "busy");
    assert!(p.spec.aggregations.is_empty());

    // An invalid rule names the SET, the rule and the field.
    std::fs::write(
        dir.join("rules.toml"),
        "[[rule]]\nid = \"busy\"\nkey = [\"nope\"]\nwhen = 'count(1h) > 100'\nevery = \"15m\"\n",
    )
    .unwrap();
    let e = eventide_sql::load_pipeline(&dir.join("job.sql"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1, column 5: SET 'eventide.rules'"), "{e}");
    assert!(e.contains("rule[0]"), "{e}");

    // Anything but [[rule]] tables is refused (it would otherwise change the spec).
    std::fs::write(dir.join("rules.toml"), "[limits]\nmax_keys = 1\n").unwrap();
    let e = eventide_sql::load_pipeline(&dir.join("job.sql"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`limits` is not a rule"), "{e}");

    // From a URL (the Lambda's EVENTIDE_PIPELINE_S3) there is no file beside it.
    let text = std::fs::read_to_string(dir.join("job.sql")).unwrap();
    let e = eventide_sql::load_pipeline_text("s3://bucket/jobs/job.sql", &text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--rules-s3"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_custom_format_compiles_and_says_it_needs_a_decoder() {
    let text = SOURCE.replace("'format' = 'json')", "'format' = 'custom')") + &insert("a");
    let p = eventide_sql::load_pipeline_text("job.sql", &text).unwrap();
    assert!(p.needs_decoder());
    assert!(p.toml.contains("'format' = 'custom'"), "{}", p.toml);
    let json = eventide_sql::load_pipeline_text("job.sql", &(SOURCE.to_string() + &insert("a")));
    assert!(!json.unwrap().needs_decoder());
}

#[test]
fn match_recognize_stays_refused() {
    let text = format!(
        "{SOURCE}INSERT INTO a SELECT * FROM events MATCH_RECOGNIZE (PARTITION BY k ORDER BY ts \
         MEASURES A.v AS v PATTERN (A B) DEFINE A AS v > 1, B AS v > 2);\n"
    );
    let (l, _, m) = error(&text);
    assert_eq!(l, 8);
    assert!(m.contains("MATCH_RECOGNIZE"), "{m}");
}
