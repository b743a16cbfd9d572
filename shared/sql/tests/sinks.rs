//! Sink tables on AWS: `'connector' = 'dynamodb' | 'kinesis'` and `'filesystem'` with an
//! `s3://` path route their INSERT's rows to a results table, an output stream or the S3
//! panes.

use common::error;
use eventide_sql::{compile, AwsRoute, AwsSink, AwsSinks};

mod common;

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
fn each_insert_into_an_aws_sink_table_is_routed_there() {
    let text = format!(
        "{SOURCE}{}{}{}{}{}{}{}{}{}",
        sink(
            "rollups",
            "'connector' = 'dynamodb', 'table-name' = 'demo-rollups', 'aws.region' = 'eu-west-1'"
        ),
        sink(
            "archive",
            "'connector' = 'filesystem', 'path' = 's3://demo-data/panes/', 'format' = 'json'"
        ),
        sink("hourly", "'connector' = 'dynamodb', 'table-name' = 'demo-hourly'"),
        sink(
            "out",
            "'connector' = 'kinesis', 'stream.arn' = 'arn:aws:kinesis:eu-west-1:123456789012:stream/rollups-out', 'format' = 'json'"
        ),
        sink("files", "'connector' = 'filesystem', 'path' = 'out', 'format' = 'csv'"),
        insert("rollups"),
        insert("archive"),
        insert("hourly"),
        insert("out"),
    );
    let c = compile(&format!("{text}{}", insert("files"))).unwrap_or_else(|e| panic!("{e}"));
    let route = |aggregation: &str, sink: AwsSink| AwsRoute {
        aggregation: aggregation.into(),
        sink,
    };
    assert_eq!(
        c.aws,
        AwsSinks {
            routes: vec![
                route(
                    "rollups",
                    AwsSink::DynamoDb {
                        table: "demo-rollups".into()
                    }
                ),
                route(
                    "archive",
                    AwsSink::S3 {
                        path: "s3://demo-data/panes/".into()
                    }
                ),
                route(
                    "hourly",
                    AwsSink::DynamoDb {
                        table: "demo-hourly".into()
                    }
                ),
                route(
                    "out",
                    AwsSink::Kinesis {
                        stream: "rollups-out".into()
                    }
                ),
            ],
            region: Some("eu-west-1".into()),
        }
    );
    // The consumer checks the S3 location and the region.
    assert_eq!(c.aws.check("demo-data", "panes", Some("eu-west-1")), Ok(()));
    let e = c
        .aws
        .check("prod-data", "panes", Some("eu-west-1"))
        .unwrap_err();
    assert!(
        e.contains("INSERT INTO archive") && e.contains("s3://prod-data/panes"),
        "{e}"
    );
    let e = c
        .aws
        .check("demo-data", "panes", Some("us-east-1"))
        .unwrap_err();
    assert!(e.contains("AWS_REGION=eu-west-1"), "{e}");
    // In replay every sink is a file of --out; the local sink names it.
    assert_eq!(c.out_dir.as_deref(), Some("out"));
    assert_eq!(c.spec.aggregations.len(), 5);
}

#[test]
fn aws_sinks_outside_the_subset_name_their_position() {
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

    let no_table = sink("a", "'connector' = 'dynamodb'");
    let (l, _, m) = error(&format!("{SOURCE}{no_table}{}", insert("a")));
    assert_eq!(l, 4, "{m}");
    assert!(m.contains("needs 'table-name'"), "{m}");
}

fn source_with(options: &str) -> String {
    format!(
        "CREATE TABLE events (k STRING, v DOUBLE, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'kinesis', 'stream' = 'in', 'format' = 'json', {options});
{}{}",
        sink(
            "a",
            "'connector' = 'filesystem', 'path' = 'out', 'format' = 'csv'"
        ),
        insert("a")
    )
}

#[test]
fn a_kinesis_source_names_its_start_position_as_flink_does() {
    let start = |options: &str| {
        let c = compile(&source_with(options)).unwrap_or_else(|e| panic!("{options}: {e}"));
        (c.source.init_position, c.source.init_timestamp_ms)
    };
    assert_eq!(
        start("'source.init.position' = 'LATEST'"),
        (Some("LATEST".into()), None)
    );
    assert_eq!(
        start("'scan.stream.initpos' = 'TRIM_HORIZON'"),
        (Some("TRIM_HORIZON".into()), None)
    );
    assert_eq!(
        start("'source.init.position' = 'AT_TIMESTAMP', 'source.init.timestamp' = '2016-04-04T19:58:46.480-00:00'"),
        (Some("AT_TIMESTAMP".into()), Some(1_459_799_926_480))
    );
    assert_eq!(
        start("'scan.stream.initpos' = 'AT_TIMESTAMP', 'scan.stream.initpos-timestamp' = '1459799926.48'"),
        (Some("AT_TIMESTAMP".into()), Some(1_459_799_926_480))
    );
    for (options, says) in [
        ("'source.init.position' = 'EARLIEST'", "'TRIM_HORIZON', 'LATEST' or 'AT_TIMESTAMP'"),
        ("'source.init.position' = 'AT_TIMESTAMP'", "needs the time"),
        ("'source.init.position' = 'LATEST', 'source.init.timestamp' = '1'", "only for the start position 'AT_TIMESTAMP'"),
        ("'source.init.position' = 'AT_TIMESTAMP', 'source.init.timestamp' = 'yesterday'", "is not a time"),
        ("'source.init.position' = 'AT_TIMESTAMP', 'source.init.timestamp' = '1', 'source.init.timestamp.format' = 'yyyy'", "default format"),
    ] {
        let (line, _, m) = error(&source_with(options));
        assert_eq!(line, 3, "{options}: {m}");
        assert!(m.contains(says), "{options}: {m}");
    }
}
