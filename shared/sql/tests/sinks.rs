//! Sink tables on AWS: `'connector' = 'dynamodb' | 'kinesis'` and `'filesystem'` with an
//! `s3://` path name the consumer's results table, output stream and S3 panes.

use eventide_sql::{compile, AwsSinks, SqlError};

const SOURCE: &str = "CREATE TABLE events (k STRING, v DOUBLE, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'kinesis', 'stream' = 'in', 'aws.region' = 'eu-west-1', 'format' = 'json');
";

fn insert(sink: &str) -> String {
    format!(
        "INSERT INTO {sink} SELECT k, window_start, window_end, SUM(v)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end;\n"
    )
}

fn sink(name: &str, with: &str) -> String {
    format!(
        "CREATE TABLE {name} (k STRING, window_start BIGINT, window_end BIGINT, s DOUBLE) WITH ({with});\n"
    )
}

#[test]
fn aws_sink_tables_name_the_consumers_sinks() {
    let text = format!(
        "{SOURCE}{}{}{}{}{}",
        sink(
            "rollups",
            "'connector' = 'dynamodb', 'table-name' = 'demo-rollups', 'aws.region' = 'eu-west-1'"
        ),
        sink(
            "archive",
            "'connector' = 'filesystem', 'path' = 's3://demo-data/panes/', 'format' = 'json'"
        ),
        sink(
            "again",
            "'connector' = 'dynamodb', 'table-name' = 'demo-rollups'"
        ),
        insert("rollups"),
        insert("archive"),
    );
    let c = compile(&format!("{text}{}", insert("again"))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.aws,
        AwsSinks {
            results_table: Some("demo-rollups".into()),
            s3_path: Some("s3://demo-data/panes/".into()),
            output_stream: None,
            region: Some("eu-west-1".into()),
        }
    );
    // The consumer takes the results table, and checks the S3 location and the region.
    let (mut table, mut stream) = ("demo-results".to_string(), None);
    c.aws
        .apply(
            &mut table,
            "demo-data",
            "panes",
            &mut stream,
            Some("eu-west-1"),
        )
        .unwrap();
    assert_eq!((table.as_str(), stream), ("demo-rollups", None));
    let e = c
        .aws
        .apply(
            &mut table,
            "prod-data",
            "panes",
            &mut None,
            Some("eu-west-1"),
        )
        .unwrap_err();
    assert!(e.contains("s3://prod-data/panes"), "{e}");
    let e = c
        .aws
        .apply(
            &mut table,
            "demo-data",
            "panes",
            &mut None,
            Some("us-east-1"),
        )
        .unwrap_err();
    assert!(e.contains("AWS_REGION=eu-west-1"), "{e}");
    // In replay every sink is a file of --out.
    assert_eq!(c.out_dir, None);
    assert_eq!(c.spec.aggregations.len(), 3);
}

#[test]
fn a_kinesis_sink_is_the_output_stream_of_every_insert() {
    let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/rollups-out";
    let text = format!(
        "{SOURCE}{}{}",
        sink(
            "out",
            &format!("'connector' = 'kinesis', 'stream.arn' = '{arn}', 'format' = 'json'")
        ),
        insert("out"),
    );
    let c = compile(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.aws.output_stream.as_deref(), Some("rollups-out"));
    let mut stream = Some("other".to_string());
    let e = c
        .aws
        .apply(&mut String::new(), "b", "panes", &mut stream, None)
        .unwrap_err();
    assert!(e.contains("--output-stream other"), "{e}");
}

fn error(text: &str) -> (u64, u64, String) {
    match compile(text) {
        Ok(c) => panic!("accepted:\n{}", c.toml),
        Err(SqlError::At {
            line,
            column,
            message,
        }) => (line, column, message),
        Err(e) => panic!("no position: {e}"),
    }
}

#[test]
fn aws_sinks_outside_the_subset_name_their_position() {
    // Lines 1–3 are the source, 4 and 5 the sinks, 6–7 and 8–9 the INSERTs.
    let kinesis = sink("a", "'connector' = 'kinesis', 'stream' = 'out'");
    let file = sink(
        "b",
        "'connector' = 'filesystem', 'path' = 'out', 'format' = 'csv'",
    );
    let (l, c, m) = error(&format!(
        "{SOURCE}{kinesis}{file}{}{}",
        insert("a"),
        insert("b")
    ));
    assert_eq!((l, c), (8, 1), "{m}");
    assert!(m.contains("one output stream"), "{m}");

    let one = sink("a", "'connector' = 'dynamodb', 'table-name' = 't1'");
    let two = sink("b", "'connector' = 'dynamodb', 'table-name' = 't2'");
    let (l, c, m) = error(&format!("{SOURCE}{one}{two}{}{}", insert("a"), insert("b")));
    assert_eq!((l, c), (5, 124), "{m}");
    assert!(m.contains("one results table"), "{m}");

    let csv = sink(
        "a",
        "'connector' = 'kinesis', 'stream' = 'out', 'format' = 'csv'",
    );
    let (l, c, m) = error(&format!("{SOURCE}{csv}{}", insert("a")));
    assert_eq!((l, c), (4, 137), "{m}");
    assert!(m.contains("JSON"), "{m}");

    let s3 = sink("a", "'connector' = 's3', 'path' = 's3://b/p'");
    let (l, c, m) = error(&format!("{SOURCE}{s3}{}", insert("a")));
    assert_eq!((l, c), (4, 97), "{m}");
    assert!(m.contains("an s3:// path"), "{m}");
}
