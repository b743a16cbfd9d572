//! Enrichment against local AWS: Glue-catalogued slow tables in S3 (CSV, and partitioned
//! Parquet written here with the parquet crate), a mid-stream table update swapped in
//! while batches keep flowing, and batched, cached DynamoDB lookups.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_sdk_glue::types::{Column, PartitionInput, SerDeInfo, StorageDescriptor, TableInput};
use aws_sdk_s3::primitives::ByteStream;
use eventide_aws::config::Clients;
use eventide_aws::enrichment::Lookups;
use eventide_engine::codec::Codec;
use eventide_engine::record::{Line, Value};
use eventide_engine::{PipelineSpec, RecordError};

async fn setup() -> (Clients, String) {
    let _ = common::clients().await;
    let clients = Clients::from_env().await;
    let bucket = common::unique("evenrich");
    clients
        .s3
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    (clients, bucket)
}

async fn put(c: &Clients, bucket: &str, key: &str, body: Vec<u8>) {
    c.s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("put object");
}

fn col(name: &str, ty: &str) -> Column {
    Column::builder()
        .name(name)
        .r#type(ty)
        .build()
        .expect("column")
}

/// A Glue table over `location` with this SerDe.
#[allow(clippy::too_many_arguments)]
async fn glue_table(
    c: &Clients,
    db: &str,
    table: &str,
    location: &str,
    serde: &str,
    serde_params: &[(&str, &str)],
    columns: &[(&str, &str)],
    partition_keys: &[(&str, &str)],
    header: bool,
) {
    let _ = c
        .glue
        .create_database()
        .database_input(
            aws_sdk_glue::types::DatabaseInput::builder()
                .name(db)
                .build()
                .expect("db"),
        )
        .send()
        .await;
    let mut si = SerDeInfo::builder().serialization_library(serde);
    for (k, v) in serde_params {
        si = si.parameters(*k, *v);
    }
    let mut sd = StorageDescriptor::builder()
        .location(location)
        .serde_info(si.build());
    for (n, t) in columns {
        sd = sd.columns(col(n, t));
    }
    let mut ti = TableInput::builder()
        .name(table)
        .storage_descriptor(sd.build());
    for (n, t) in partition_keys {
        ti = ti.partition_keys(col(n, t));
    }
    if header {
        ti = ti.parameters("skip.header.line.count", "1");
    }
    c.glue
        .create_table()
        .database_name(db)
        .table_input(ti.build().expect("table input"))
        .send()
        .await
        .expect("create table");
}

fn parquet_file(rows: &[(String, f64)]) -> Vec<u8> {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    let schema = Arc::new(
        parse_message_type("message t { REQUIRED BYTE_ARRAY id (UTF8); REQUIRED DOUBLE credit; }")
            .expect("schema"),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut buf = Vec::new();
    let mut w = SerializedFileWriter::new(&mut buf, schema, props).expect("writer");
    let mut rg = w.next_row_group().expect("row group");
    let ids: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.0.as_str())).collect();
    let mut c = rg.next_column().expect("col").expect("id column");
    c.typed::<ByteArrayType>()
        .write_batch(&ids, None, None)
        .expect("ids");
    c.close().expect("close");
    let vals: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let mut c = rg.next_column().expect("col").expect("credit column");
    c.typed::<DoubleType>()
        .write_batch(&vals, None, None)
        .expect("vals");
    c.close().expect("close");
    rg.close().expect("close row group");
    w.close().expect("close file");
    buf
}

fn spec(enrichment: &str) -> PipelineSpec {
    PipelineSpec::from_toml(&format!(
        r#"
        [input]
        event_time = {{ field = "t" }}
        fields = {{ sub = "string", v = "number" }}
        {enrichment}
        [[aggregation]]
        name = "a"
        group_by = ["sub"]
        window = {{ type = "tumbling", size = "1m" }}
        aggregates = [{{ name = "n", fn = "count" }}]
        "#
    ))
    .expect("spec")
}

/// The events of a batch of lines, decoded once as the consumer does.
fn events<'a>(
    spec: &PipelineSpec,
    lines: &'a [String],
) -> Vec<eventide_engine::record::Record<'a>> {
    let codec = Codec::new(spec);
    lines
        .iter()
        .filter_map(|l| match codec.decode_unenriched(l.as_bytes()) {
            Ok(Line::Event(r)) => Some(r),
            _ => None,
        })
        .collect()
}

fn enriched(d: &Codec, line: &str) -> Result<Vec<Value<'static>>, RecordError> {
    match d.decode(line.as_bytes())? {
        Line::Event(r) => Ok(r.values[2..]
            .iter()
            .map(|v| match v {
                Value::Str(s) => Value::Str(s.to_string().into()),
                Value::Num(n) => Value::Num(*n),
                Value::Bool(b) => Value::Bool(*b),
                Value::Null => Value::Null,
            })
            .collect()),
        _ => panic!("not an event"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_csv_table_loads_and_refreshes_without_pausing() {
    let (c, bucket) = setup().await;
    let db = common::unique("evdb").replace('-', "_");
    let csv = |version: &str, n: usize| {
        let mut s = String::from("id|tier|limit\n");
        for i in 0..n {
            s.push_str(&format!("s{i}|{version}|{i}\n"));
        }
        s.into_bytes()
    };
    put(&c, &bucket, "subs/part-0.csv", csv("v1", 2_000)).await;
    put(&c, &bucket, "subs/_SUCCESS", Vec::new()).await;
    glue_table(
        &c,
        &db,
        "subs",
        &format!("s3://{bucket}/subs/"),
        "org.apache.hadoop.hive.serde2.OpenCSVSerde",
        &[("separatorChar", "|")],
        &[("id", "string"), ("tier", "string"), ("limit", "string")],
        &[],
        true,
    )
    .await;
    let spec = spec(&format!(
        r#"[[enrichment]]
        name = "subs"
        glue = {{ database = "{db}", table = "subs" }}
        join = [{{ field = "sub", column = "id" }}]
        columns = [{{ column = "tier", type = "string" }}, {{ column = "limit", as = "sub_limit", type = "number" }}]
        on_miss = "dead_letter""#
    ));
    let lookups = Lookups::start_with(&spec, c.clone()).await.expect("load");
    let mut d = Codec::new(&spec);
    d.set_lookups(lookups.snapshot());
    assert_eq!(
        enriched(&d, r#"{"sub":"s7","v":1,"t":1}"#).unwrap(),
        vec![Value::Str("v1".into()), Value::Num(7.0)]
    );
    let e = enriched(&d, r#"{"sub":"zz","v":1,"t":1}"#).unwrap_err();
    assert!(e.to_string().contains("no row for key \"zz\""), "{e}");
    assert_eq!(lookups.refresh(0).await.expect("check"), None, "unchanged");

    // Update the table mid-stream: a bigger v2 object replaces v1. Batches keep flowing
    // while the new version loads in the background; each batch sees one version.
    put(&c, &bucket, "subs/part-0.csv", csv("v2", 60_000)).await;
    let done = Arc::new(AtomicBool::new(false));
    let reload = {
        let (l, done) = (Arc::clone(&lookups), Arc::clone(&done));
        tokio::spawn(async move {
            let r = l.refresh(0).await;
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    let mut versions = Vec::new();
    let mut batches_during_reload = 0;
    for batch in 0.. {
        let reloading = !done.load(Ordering::SeqCst);
        let lines: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"sub":"s{}","v":1,"t":{batch}}}"#, (i * 17) % 2_000))
            .collect();
        let snap = lookups
            .snapshot_for_batch(&events(&spec, &lines))
            .await
            .expect("snapshot");
        d.set_lookups(snap);
        let mut seen: Vec<Value<'static>> = lines
            .iter()
            .map(|l| enriched(&d, l).expect("enriched")[0].clone())
            .collect();
        seen.dedup();
        assert_eq!(seen.len(), 1, "batch {batch} mixed versions: {seen:?}");
        if reloading {
            batches_during_reload += 1;
        }
        versions.push(seen.remove(0));
        if done.load(Ordering::SeqCst) && versions.last() == Some(&Value::Str("v2".into())) {
            break;
        }
        tokio::task::yield_now().await;
        assert!(batch < 1_000_000, "the new version never arrived");
    }
    let report = reload
        .await
        .expect("task")
        .expect("reload")
        .expect("a new version");
    assert_eq!(report.rows, 60_000);
    // Old version strictly before the new one, never back.
    let first_v2 = versions
        .iter()
        .position(|v| *v == Value::Str("v2".into()))
        .expect("v2 seen");
    assert!(versions[..first_v2]
        .iter()
        .all(|v| *v == Value::Str("v1".into())));
    assert!(versions[first_v2..]
        .iter()
        .all(|v| *v == Value::Str("v2".into())));
    assert!(
        batches_during_reload > 0,
        "no batch ran while the table reloaded: the consumer paused"
    );
    eprintln!(
        "reload of 60,000 rows took {:?}; {batches_during_reload} batches ran meanwhile",
        report.elapsed
    );

    // A failed reload (a value that does not fit its type) keeps the current version.
    put(
        &c,
        &bucket,
        "subs/part-0.csv",
        b"id|tier|limit\ns1|v3|lots\n".to_vec(),
    )
    .await;
    let e = lookups.refresh(0).await.unwrap_err().to_string();
    assert!(e.contains("\"lots\" is not a number"), "{e}");
    d.set_lookups(lookups.snapshot());
    assert_eq!(
        enriched(&d, r#"{"sub":"s1","v":1,"t":1}"#).unwrap()[0],
        Value::Str("v2".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_partitioned_parquet_table_loads() {
    let (c, bucket) = setup().await;
    let db = common::unique("evdb").replace('-', "_");
    let eu: Vec<(String, f64)> = (0..500)
        .map(|i| (format!("s{i}"), i as f64 / 2.0))
        .collect();
    let us: Vec<(String, f64)> = (500..800).map(|i| (format!("s{i}"), i as f64)).collect();
    put(
        &c,
        &bucket,
        "credit/region=eu/part-0.parquet",
        parquet_file(&eu),
    )
    .await;
    put(
        &c,
        &bucket,
        "credit/region=us/part-0.parquet",
        parquet_file(&us),
    )
    .await;
    glue_table(
        &c,
        &db,
        "credit",
        &format!("s3://{bucket}/credit/"),
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        &[],
        &[("id", "string"), ("credit", "double")],
        &[("region", "string")],
        false,
    )
    .await;
    // Register one partition in the catalog: when the catalog lists partitions, only those
    // are read (as Athena does); the S3 layout is the fallback for none.
    let spec = spec(&format!(
        r#"[[enrichment]]
        name = "credit"
        glue = {{ database = "{db}", table = "credit" }}
        join = [{{ field = "sub", column = "id" }}]
        columns = [{{ column = "credit", type = "number" }}, {{ column = "region", type = "string" }}]
        on_miss = "drop""#
    ));
    let lookups = Lookups::start_with(&spec, c.clone()).await.expect("load");
    let mut d = Codec::new(&spec);
    d.set_lookups(lookups.snapshot());
    assert_eq!(lookups.snapshot().table(0).unwrap().rows(), 800);
    assert_eq!(
        enriched(&d, r#"{"sub":"s3","v":1,"t":1}"#).unwrap(),
        vec![Value::Num(1.5), Value::Str("eu".into())]
    );
    assert_eq!(
        enriched(&d, r#"{"sub":"s600","v":1,"t":1}"#).unwrap(),
        vec![Value::Num(600.0), Value::Str("us".into())]
    );
    assert!(matches!(
        enriched(&d, r#"{"sub":"s900","v":1,"t":1}"#),
        Err(RecordError::Dropped(_))
    ));

    let part = PartitionInput::builder()
        .values("eu")
        .storage_descriptor(
            StorageDescriptor::builder()
                .location(format!("s3://{bucket}/credit/region=eu/"))
                .build(),
        )
        .build();
    c.glue
        .create_partition()
        .database_name(&db)
        .table_name("credit")
        .partition_input(part)
        .send()
        .await
        .expect("create partition");
    let report = lookups
        .refresh(0)
        .await
        .expect("refresh")
        .expect("a new version: the catalog's partitions changed");
    assert_eq!(report.rows, 500, "only the registered partition");
    d.set_lookups(lookups.snapshot());
    assert_eq!(
        enriched(&d, r#"{"sub":"s3","v":1,"t":1}"#).unwrap()[1],
        Value::Str("eu".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_jsonl_prefix_loads() {
    let (c, bucket) = setup().await;
    put(
        &c,
        &bucket,
        "plans/a.jsonl",
        b"{\"sub\":\"s1\",\"vip\":true}\n{\"sub\":\"s2\",\"vip\":false}\n".to_vec(),
    )
    .await;
    let spec = spec(&format!(
        r#"[[enrichment]]
        name = "plans"
        s3 = {{ location = "s3://{bucket}/plans/", format = "jsonl" }}
        join = ["sub"]
        columns = [{{ column = "vip", type = "bool" }}]"#
    ));
    let lookups = Lookups::start_with(&spec, c.clone()).await.expect("load");
    let mut d = Codec::new(&spec);
    d.set_lookups(lookups.snapshot());
    assert_eq!(
        enriched(&d, r#"{"sub":"s1","v":1,"t":1}"#).unwrap(),
        vec![Value::Bool(true)]
    );
    assert_eq!(
        enriched(&d, r#"{"sub":"s3","v":1,"t":1}"#).unwrap(),
        vec![Value::Null]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_lookups_are_batched_cached_and_in_order() {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    use eventide_aws::sdk::dynamodb::{batch_write, ensure_table};
    let (c, _bucket) = setup().await;
    let table = common::unique("evlookup");
    ensure_table(&c.dynamodb, &table, "id", None)
        .await
        .expect("create table");
    // 150 subscribers: more than one BatchGetItem's worth of keys.
    let items: Vec<WriteRequest> = (0..150)
        .map(|i| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .item("id", AttributeValue::S(format!("s{i}")))
                        .item("threshold", AttributeValue::N(format!("{}", i * 10)))
                        .build()
                        .expect("put"),
                )
                .build()
        })
        .collect();
    batch_write(&c.dynamodb, &table, items, "seed")
        .await
        .expect("write");
    let spec = spec(&format!(
        r#"[[enrichment]]
        name = "live"
        dynamodb = {{ table = "{table}", cache_ttl = "1m", max_concurrency = 2 }}
        join = [{{ field = "sub", column = "id" }}]
        columns = [{{ column = "threshold", type = "number" }}]"#
    ));
    let lookups = Lookups::start_with(&spec, c.clone()).await.expect("start");
    // A batch in a scrambled order with repeats and keys absent from the table.
    let order: Vec<usize> = (0..400).map(|i| (i * 37) % 160).collect();
    let lines: Vec<String> = order
        .iter()
        .map(|i| format!(r#"{{"sub":"s{i}","v":1,"t":1}}"#))
        .collect();
    let snap = lookups
        .snapshot_for_batch(&events(&spec, &lines))
        .await
        .expect("lookup");
    let mut d = Codec::new(&spec);
    d.set_lookups(snap);
    for (i, l) in order.iter().zip(&lines) {
        let want = if *i < 150 {
            Value::Num(*i as f64 * 10.0)
        } else {
            Value::Null
        };
        assert_eq!(enriched(&d, l).unwrap(), vec![want], "{l}");
    }
    let live = lookups.live(0).expect("live lookup");
    let s = live.stats();
    assert_eq!(s.fetched_keys, 160, "each distinct key fetched once");
    assert!(s.calls >= 2, "160 keys need two BatchGetItem calls: {s:?}");
    // The next batch is served from the cache, absent keys included.
    lookups
        .snapshot_for_batch(&events(&spec, &lines))
        .await
        .expect("lookup");
    let s2 = live.stats();
    assert_eq!(s2.fetched_keys, 160);
    assert_eq!(s2.calls, s.calls);
    assert_eq!(s2.cache_hits, 160);
    let _ = c.dynamodb.delete_table().table_name(&table).send().await;
}
