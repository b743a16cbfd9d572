//! Enrichment figures for a 1M-row slow table: load time (CSV and Parquet), memory (bytes
//! per row, total), refresh time, and lookups per second (bare table lookups, and decoding
//! plus enriching event lines against decoding alone).
//!
//! `cargo bench -p eventide-aws --bench enrich` (set `ENRICH_ROWS` for another size).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use eventide_aws::config::Clients;
use eventide_aws::enrichment::Lookups;
use eventide_engine::codec::json::Schema;
use eventide_engine::codec::Codec;
use eventide_engine::PipelineSpec;

const TIERS: [&str; 4] = ["bronze", "silver", "gold", "platinum"];

fn write_csv(path: &std::path::Path, rows: usize, salt: usize) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("csv"));
    writeln!(w, "id,tier,limit").expect("write");
    for i in 0..rows {
        writeln!(
            w,
            "s{i:07},{},{}",
            TIERS[(i + salt) % 4],
            (i % 1000) as f64 / 4.0
        )
        .expect("write");
    }
}

fn write_parquet(path: &std::path::Path, rows: usize) {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    let schema = Arc::new(
        parse_message_type(
            "message t { REQUIRED BYTE_ARRAY id (UTF8); REQUIRED BYTE_ARRAY tier (UTF8); REQUIRED DOUBLE limit; }",
        )
        .expect("schema"),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).expect("parquet");
    let mut w = SerializedFileWriter::new(file, schema, props).expect("writer");
    for chunk in (0..rows).collect::<Vec<_>>().chunks(128 * 1024) {
        let mut rg = w.next_row_group().expect("row group");
        let ids: Vec<ByteArray> = chunk
            .iter()
            .map(|i| ByteArray::from(format!("s{i:07}").as_str()))
            .collect();
        let tiers: Vec<ByteArray> = chunk
            .iter()
            .map(|i| ByteArray::from(TIERS[i % 4]))
            .collect();
        let limits: Vec<f64> = chunk.iter().map(|i| (i % 1000) as f64 / 4.0).collect();
        let mut c = rg.next_column().expect("col").expect("id");
        c.typed::<ByteArrayType>()
            .write_batch(&ids, None, None)
            .expect("ids");
        c.close().expect("close");
        let mut c = rg.next_column().expect("col").expect("tier");
        c.typed::<ByteArrayType>()
            .write_batch(&tiers, None, None)
            .expect("tiers");
        c.close().expect("close");
        let mut c = rg.next_column().expect("col").expect("limit");
        c.typed::<DoubleType>()
            .write_batch(&limits, None, None)
            .expect("limits");
        c.close().expect("close");
        rg.close().expect("close row group");
    }
    w.close().expect("close");
}

fn spec(path: &std::path::Path) -> PipelineSpec {
    PipelineSpec::from_toml(&format!(
        r#"
        [input]
        event_time = {{ field = "event_time" }}
        fields = {{ subscriber_id = "string", counter = "string", value = "number" }}
        [[enrichment]]
        name = "subs"
        file = {{ path = "{}" }}
        join = [{{ field = "subscriber_id", column = "id" }}]
        columns = [{{ column = "tier", type = "string" }}, {{ column = "limit", type = "number" }}]
        refresh = "1h"
        [[aggregation]]
        name = "a"
        group_by = ["tier"]
        window = {{ type = "tumbling", size = "15m" }}
        aggregates = [{{ name = "n", fn = "count" }}]
        "#,
        path.display()
    ))
    .expect("spec")
}

fn main() {
    let rows: usize = std::env::var("ENRICH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("eventide-bench-enrich-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let clients = rt.block_on(Clients::from_env());

    let csv = dir.join("subs.csv");
    write_csv(&csv, rows, 0);
    let pq = dir.join("subs.parquet");
    write_parquet(&pq, rows);
    println!("rows: {rows}");
    println!(
        "csv_bytes: {}",
        std::fs::metadata(&csv).map_or(0, |m| m.len())
    );
    println!(
        "parquet_bytes: {}",
        std::fs::metadata(&pq).map_or(0, |m| m.len())
    );

    for (name, path) in [("csv", &csv), ("parquet", &pq)] {
        let spec = spec(path);
        let t = Instant::now();
        let lookups = rt
            .block_on(Lookups::start_with(&spec, clients.clone()))
            .expect("load");
        let secs = t.elapsed().as_secs_f64();
        let snap = lookups.snapshot();
        let table = snap.table(0).expect("table");
        println!("{name}_load_seconds: {secs:.3}");
        println!("{name}_table_bytes: {}", table.heap_bytes());
        println!(
            "{name}_bytes_per_row: {:.1}",
            table.heap_bytes() as f64 / table.rows() as f64
        );
    }

    // Refresh: a new version of the CSV, checked, loaded and swapped in.
    let spec = spec(&csv);
    let lookups = rt
        .block_on(Lookups::start_with(&spec, clients.clone()))
        .expect("load");
    write_csv(&csv, rows, 1);
    let t = Instant::now();
    let report = rt
        .block_on(lookups.refresh(0))
        .expect("refresh")
        .expect("new version");
    println!(
        "csv_refresh_seconds: {:.3} (load {:.3})",
        t.elapsed().as_secs_f64(),
        report.elapsed.as_secs_f64()
    );

    // Lookups: bare table gets over random keys.
    let snap = lookups.snapshot();
    let table = snap.table(0).expect("table");
    let keys: Vec<String> = (0..rows)
        .map(|i| format!("s{:07}", (i * 7919) % rows))
        .collect();
    let t = Instant::now();
    let mut hits = 0usize;
    for k in &keys {
        hits += usize::from(table.get(k).is_some());
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(hits, rows);
    println!("table_lookups_per_second: {:.0}", rows as f64 / secs);

    // Decode + enrich event lines vs decode alone.
    let lines: Vec<String> = (0..rows)
        .map(|i| {
            format!(
                r#"{{"subscriber_id":"s{:07}","counter":"x","value":3.25,"event_time":{}}}"#,
                (i * 7919) % rows,
                1_767_225_600_000i64 + i as i64
            )
        })
        .collect();
    let schema = Schema::new(&eventide_engine::enrich::decoded_input(&spec));
    let t = Instant::now();
    for l in &lines {
        std::hint::black_box(schema.parse_line(l.as_bytes()).expect("decode"));
    }
    let decode = t.elapsed().as_secs_f64();
    let mut d = Codec::new(&spec);
    d.set_lookups(snap.clone());
    let t = Instant::now();
    for l in &lines {
        std::hint::black_box(d.decode(l.as_bytes()).expect("decode"));
    }
    let both = t.elapsed().as_secs_f64();
    println!("decode_events_per_second: {:.0}", rows as f64 / decode);
    println!(
        "decode_and_enrich_events_per_second: {:.0}",
        rows as f64 / both
    );
    println!(
        "enrich_lookups_per_second: {:.0} ({:.0} ns per record)",
        rows as f64 / (both - decode).max(1e-9),
        (both - decode).max(0.0) * 1e9 / rows as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
