//! A Glue catalog table in SQL against local AWS (`localstack/up`; moto has Glue): the
//! enrichment example with its subscribers table catalogued in Glue over S3, joined as
//! `glue.<db>.subscribers`, gives the same rows as the example's SQL twin over the local
//! file.

use std::path::PathBuf;

use aws_sdk_glue::types::{Column, DatabaseInput, SerDeInfo, StorageDescriptor, TableInput};
use aws_sdk_s3::primitives::ByteStream;
use eventide_aws::config::Clients;
use eventide_aws::enrichment::Lookups;
use eventide_connectors::replay::{replay, ReplayOptions};
use eventide_engine::enrich::{OnMiss, SourceSpec};
use eventide_engine::PipelineSpec;
use eventide_testkit::reference::project_root;

async fn run(spec: PipelineSpec, clients: &Clients, tag: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("eventide-sql-glue-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let lookups = Lookups::start_with(&spec, clients.clone())
        .await
        .expect("load the lookup tables");
    let opts = ReplayOptions {
        lookups: lookups.snapshot(),
        ..ReplayOptions::default()
    };
    let input = project_root().join("examples/enrichment/events.jsonl");
    tokio::task::spawn_blocking(move || replay(spec, &input, &out, &opts).map(|_| out))
        .await
        .expect("replay thread")
        .expect("replay")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glue_catalog_table_joins_as_the_same_file_does() {
    eventide_testkit::require_local_aws();
    let c = Clients::from_env().await;
    let bucket = eventide_testkit::unique("evsqlglue");
    c.s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let csv =
        std::fs::read(project_root().join("examples/enrichment/subscribers.csv")).expect("csv");
    c.s3.put_object()
        .bucket(&bucket)
        .key("ref/subscribers/part-0.csv")
        .body(ByteStream::from(csv))
        .send()
        .await
        .expect("put");
    let db = eventide_testkit::unique("evsqldb").replace('-', "_");
    c.glue
        .create_database()
        .database_input(DatabaseInput::builder().name(&db).build().expect("db"))
        .send()
        .await
        .expect("create database");
    let mut sd = StorageDescriptor::builder()
        .location(format!("s3://{bucket}/ref/subscribers/"))
        .serde_info(
            SerDeInfo::builder()
                .serialization_library("org.apache.hadoop.hive.serde2.OpenCSVSerde")
                .parameters("separatorChar", ",")
                .build(),
        );
    for n in ["id", "tier", "threshold"] {
        sd = sd.columns(
            Column::builder()
                .name(n)
                .r#type("string")
                .build()
                .expect("column"),
        );
    }
    c.glue
        .create_table()
        .database_name(&db)
        .table_input(
            TableInput::builder()
                .name("subscribers")
                .storage_descriptor(sd.build())
                .parameters("skip.header.line.count", "1")
                .build()
                .expect("table"),
        )
        .send()
        .await
        .expect("create table");

    // The example's SQL twin, with the subscribers table in the Glue catalog.
    let file_sql =
        std::fs::read_to_string(project_root().join("examples/sql/enrichment.sql")).unwrap();
    let start = file_sql.find("CREATE TABLE subscribers").unwrap();
    let end = start + file_sql[start..].find(");\n").unwrap() + 3;
    let glue_sql = format!(
        "{}CREATE CATALOG glue WITH ('type' = 'glue', 'default-database' = '{db}');\n{}",
        &file_sql[..start],
        &file_sql[end..]
    )
    .replace(
        "s.threshold AS sub_threshold",
        "CAST(s.threshold AS DOUBLE) AS sub_threshold",
    )
    .replace(
        "JOIN subscribers FOR",
        &format!("JOIN glue.{db}.subscribers FOR"),
    );
    let g = eventide_sql::load_pipeline_text("glue.sql", &glue_sql)
        .unwrap_or_else(|e| panic!("{e}\n{glue_sql}"))
        .spec;
    assert_eq!(
        g.enrichments[0].source,
        SourceSpec::Glue {
            database: db.clone(),
            table: "subscribers".into()
        }
    );
    // A catalog table has no 'lookup.on-miss': its inner join drops the misses, as Flink's.
    let mut f = eventide_sql::load_pipeline(&project_root().join("examples/sql/enrichment.sql"))
        .unwrap()
        .spec;
    f.enrichments[0].on_miss = OnMiss::Drop;
    for e in &mut f.enrichments {
        if let SourceSpec::File { path, .. } = &mut e.source {
            *path = project_root().join(&*path).to_string_lossy().into_owned();
        }
    }
    let a = run(g, &c, "glue").await;
    let b = run(f, &c, "file").await;
    for table in ["by_tier.csv", "gold_x.csv"] {
        let x = std::fs::read_to_string(a.join(table)).expect("glue output");
        let y = std::fs::read_to_string(b.join(table)).expect("file output");
        assert_eq!(x, y, "{table}");
        assert!(x.lines().count() > 1, "{table}: {x}");
    }
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}
