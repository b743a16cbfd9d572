//! Glue Data Catalog tables in lookup joins: `CREATE CATALOG … WITH ('type' = 'glue')` and
//! `JOIN c.db.t FOR SYSTEM_TIME AS OF e.proc_time` compile to the spec's `glue = { … }`
//! enrichment (the spec text, checked without AWS), and what is refused, by position.

use common::assert_errors;
use eventide_engine::enrich::{OnMiss, SourceSpec};
use eventide_engine::spec::FieldType;

mod common;

const HEAD: &str = "CREATE CATALOG glue WITH ('type' = 'glue', 'catalog-name' = 'glue',
  'default-database' = 'ref', 'region' = 'eu-west-1');
CREATE TABLE events (subscriber_id STRING, counter STRING, `value` DOUBLE, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3), proc_time AS PROCTIME(),
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE)
  WITH ('connector' = 'kinesis', 'stream' = 'events');
CREATE TABLE by_tier (tier STRING, window_start BIGINT, window_end BIGINT, n BIGINT, high DOUBLE)
  WITH ('connector' = 'dynamodb', 'table-name' = 'results');
";

/// The view starts on line 9.
fn view(select: &str, join: &str) -> String {
    format!(
        "{HEAD}CREATE TEMPORARY VIEW enriched AS SELECT {select}
FROM events AS e {join} glue.ref.subscribers FOR SYSTEM_TIME AS OF e.proc_time AS s
  ON e.subscriber_id = s.id;
INSERT INTO by_tier SELECT tier, window_start, window_end, COUNT(*), MAX(threshold)
FROM TABLE(TUMBLE(TABLE enriched, DESCRIPTOR(ts), INTERVAL '15' MINUTES))
GROUP BY tier, window_start, window_end;
"
    )
}

#[test]
fn a_glue_table_compiles_to_a_glue_enrichment() {
    let text = view(
        "e.*, s.tier, CAST(s.threshold AS DOUBLE) AS threshold",
        "LEFT JOIN",
    );
    let c = eventide_sql::compile(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        c.toml.contains(
            "[[enrichment]]\nname = \"subscribers\"\n\
             glue = { database = \"ref\", table = \"subscribers\" }\n\
             join = [{ field = \"subscriber_id\", column = \"id\" }]\n\
             columns = [{ column = \"tier\", type = \"string\" }, \
             { column = \"threshold\", type = \"number\" }]\n\
             on_miss = \"null\"\n"
        ),
        "{}",
        c.toml
    );
    let e = &c.spec.enrichments[0];
    assert_eq!(
        e.source,
        SourceSpec::Glue {
            database: "ref".into(),
            table: "subscribers".into()
        }
    );
    assert_eq!(e.on_miss, OnMiss::Null);
    assert_eq!(e.columns[1].ty, FieldType::Number);
    // The catalog's region is the consumer's, as a sink's 'aws.region' is.
    assert_eq!(c.aws.region.as_deref(), Some("eu-west-1"));
    // An inner join drops the rows without a match, as Flink's does.
    let inner = view(
        "e.*, s.tier, CAST(s.threshold AS DOUBLE) AS threshold",
        "JOIN",
    );
    let c = eventide_sql::compile(&inner).unwrap();
    assert_eq!(c.spec.enrichments[0].on_miss, OnMiss::Drop);
}

#[test]
fn what_a_glue_table_cannot_do_is_refused_at_its_place() {
    let ok_select = "e.*, s.tier, CAST(s.threshold AS DOUBLE) AS threshold";
    let cases: Vec<(String, u64, u64, &str)> = vec![
        // Its columns are in the catalog: they must be named.
        (view("e.*, s.*", "JOIN"), 9, 47, "name them"),
        (view("*", "JOIN"), 9, 42, "name them"),
        // A CAST anywhere else would be a conversion the view does not do.
        (
            view("e.*, s.tier, CAST(e.`value` AS STRING) AS v2, CAST(s.threshold AS DOUBLE) AS threshold", "JOIN"),
            9, 60, "CAST in a view",
        ),
        (view("e.*, s.tier, CAST(s.threshold AS DATE) AS threshold", "JOIN"), 9, 60, "use STRING, DOUBLE"),
        // Undeclared catalog; other catalog types; unknown options.
        (
            view(ok_select, "JOIN").replace("JOIN glue.ref", "JOIN hive.ref"),
            10, 23, "unknown catalog `hive`",
        ),
        (
            view(ok_select, "JOIN").replace("'type' = 'glue'", "'type' = 'hive'"),
            1, 36, "catalog type 'hive' is not supported",
        ),
        (
            view(ok_select, "JOIN").replace("'catalog-name' = 'glue'", "'warehouse' = 's3://w'"),
            1, 58, "option 'warehouse'",
        ),
        (
            view(ok_select, "JOIN").replace("CREATE CATALOG glue WITH (", "CREATE CATALOG glue ("),
            1, 21, "expected WITH",
        ),
        // The consumer runs in one region.
        (
            view(ok_select, "JOIN").replace(
                "'table-name' = 'results')",
                "'table-name' = 'results', 'aws.region' = 'us-east-1')",
            ),
            2, 42, "one region",
        ),
    ];
    assert_errors("", &cases);
}
