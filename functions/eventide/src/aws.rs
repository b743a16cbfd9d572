//! `eventide put` and `eventide results`: move data into a Kinesis stream and read a
//! pipeline's results table back into the same files `eventide replay` writes; and the S3
//! input of `eventide replay`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use eventide_aws::config::Clients;
use eventide_aws::kinesis::{create_stream_and_wait, put_records, PutEntry};
use eventide_aws::sdk::dynamodb::get_s;
use eventide_aws::sdk::s3::S3Url;
use eventide_aws::sinks::DynamoDbSink;
use eventide_connectors::input::{resolve, InputFile, InputSource};
use eventide_connectors::sinks::open_file_sink;
use eventide_connectors::sources::LineSource;
use eventide_engine::codec::Codec;
use eventide_engine::pane::Pane;
use eventide_engine::record::{Line, Value};
use eventide_engine::trigger::Timing;
use eventide_engine::window::Window;
use eventide_engine::PipelineSpec;

/// The records of `input` (a file, directory or glob) read by the file layer as `spec`'s
/// `[input]` says (JSON lines with compression detected, without a spec), each with the
/// value of `key_field` as partition key (a record without it goes with the key `"-"`).
/// Header and footer lines are framing, not records: they are not put.
fn put_entries(
    input: &Path,
    spec: Option<&PipelineSpec>,
    key_field: &str,
) -> Result<Vec<PutEntry>> {
    let files = resolve(input)?;
    let Some(spec) = spec else {
        let mut src = InputSource::with_layout(files, &Default::default(), &Default::default())?;
        let mut entries = Vec::new();
        while let Some((_, raw)) = src.next_line()? {
            let key = serde_json::from_slice::<serde_json::Value>(raw)
                .ok()
                .and_then(|v| {
                    v.get(key_field)
                        .map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_string))
                })
                .unwrap_or_else(|| "-".into());
            entries.push(PutEntry::new(key, raw.to_vec()));
        }
        return Ok(entries);
    };
    let field = spec.input.field_index(key_field).with_context(|| {
        format!("--key-field {key_field:?} is not one of the pipeline's input.fields")
    })?;
    let mut src = InputSource::open(files, spec)?;
    let mut codec = Codec::new(spec);
    if let Some(columns) = src.csv_columns() {
        codec = codec.with_csv_columns(spec, columns);
    }
    let mut entries = Vec::new();
    while let Some((_, raw)) = src.next_line()? {
        let key = match codec.decode_unenriched(raw) {
            Ok(Line::Event(rec)) => match rec.values.get(field) {
                Some(Value::Str(s)) => s.to_string(),
                Some(Value::Num(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => "-".into(),
            },
            // A malformed record still goes in: the consumer makes it a dead letter.
            _ => "-".into(),
        };
        entries.push(PutEntry::new(key, raw.to_vec()));
    }
    Ok(entries)
}

/// Writes the records of `input` to `stream` in order (see [`put_entries`]). Creates the
/// stream with `shards` shards first when asked.
pub async fn put(
    stream: &str,
    input: &Path,
    spec: Option<&PipelineSpec>,
    key_field: &str,
    create_shards: Option<i32>,
) -> Result<usize> {
    let clients = Clients::from_env().await;
    if let Some(n) = create_shards {
        create_stream_and_wait(&clients.kinesis, stream, n)
            .await
            .with_context(|| format!("creating stream {stream}"))?;
    }
    let entries = put_entries(input, spec, key_field)
        .with_context(|| format!("reading {}", input.display()))?;
    let total = entries.len();
    let mut done = 0;
    for chunk in entries.chunks(5_000) {
        put_records(&clients.kinesis, stream, chunk)
            .await
            .with_context(|| format!("writing to stream {stream} ({done} of {total} written)"))?;
        done += chunk.len();
        tracing::info!(stream, done, total, "put");
    }
    Ok(total)
}

/// Downloads the objects under `s3://bucket/prefix/` into `dir`, in key order, as the files
/// of a replay's input (each named by its S3 address in errors and dead letters).
pub async fn download(location: &str, dir: &Path) -> Result<Vec<InputFile>> {
    let clients = Clients::from_env().await;
    let S3Url {
        bucket,
        key: prefix,
    } = S3Url::parse(location)?;
    let objects = eventide_aws::enrichment::s3::list(&clients.s3, &bucket, &prefix).await?;
    anyhow::ensure!(!objects.is_empty(), "no object under {location}");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = Vec::with_capacity(objects.len());
    for (i, o) in objects.iter().enumerate() {
        // The index keeps the key order; the object's own name keeps its extension.
        let base = o.key.rsplit('/').next().unwrap_or("object");
        let path = dir.join(format!("{i:06}-{base}"));
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        // Streamed to the file: an object of any size takes no more memory than a chunk.
        eventide_aws::enrichment::s3::get_chunks(&clients.s3, &bucket, &o.key, |chunk| {
            use std::io::Write;
            file.write_all(chunk)
                .with_context(|| format!("writing {}", path.display()))
        })
        .await?;
        file.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", path.display()))?;
        files.push(InputFile {
            path,
            name: format!("s3://{bucket}/{}", o.key),
        });
    }
    Ok(files)
}

/// Reads the results table `table` of the pipeline and writes one file per aggregation
/// under `out`, exactly as `eventide replay` would (same columns, format and order).
pub async fn results(spec: &PipelineSpec, table: &str, out: &Path) -> Result<usize> {
    let clients = Clients::from_env().await;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut sinks = spec
        .aggregations
        .iter()
        .map(|a| open_file_sink(out, spec, a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = clients
            .dynamodb
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .with_context(|| format!("scanning {table}"))?;
        items.extend(page.items().iter().cloned());
        match page.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => break,
        }
    }
    // Rows go to the sinks in window order per key, as they fired.
    items.sort_by(|a, b| get_s(a, "sk").cmp(&get_s(b, "sk")));
    let names: Vec<(Vec<String>, Vec<String>)> = spec
        .aggregations
        .iter()
        .map(|a| {
            (
                a.group_by
                    .iter()
                    .map(|&f| spec.input.fields[f].0.clone())
                    .collect(),
                a.value_names(),
            )
        })
        .collect();
    let mut key_ids: HashMap<String, u64> = HashMap::new();
    let mut written = 0;
    for item in &items {
        let Some(i) = DynamoDbSink::aggregation_of(item)
            .and_then(|agg| spec.aggregations.iter().position(|a| a.name == agg))
        else {
            continue;
        };
        let (group_by, aggregates) = &names[i];
        let row = DynamoDbSink::row(item, group_by, aggregates)
            .with_context(|| format!("reading {table}"))?;
        let key = row.key();
        let next = key_ids.len() as u64;
        let key_id = *key_ids
            .entry(format!("{}#{key}", row.aggregation))
            .or_insert(next);
        let values: Vec<Option<f64>> = row.values.iter().map(|(_, v)| *v).collect();
        let timing = match row.timing {
            "EARLY" => Timing::Early,
            "LATE" => Timing::Late,
            _ => Timing::OnTime,
        };
        let pane = Pane {
            aggregation: i,
            key: &key,
            key_id,
            window: Window {
                start: row.window_start,
                end: row.window_end,
            },
            timing,
            index: row.pane_index,
            retraction: row.retraction,
            values: &values,
        };
        sinks[i].write(&pane)?;
        written += 1;
    }
    for s in sinks.iter_mut() {
        s.finish()?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// `put` reads what `replay` reads: a zip of CSV entries with banners, header rows and
    /// counted trailers becomes its records only, keyed by the field's value.
    #[test]
    fn put_reads_the_file_layer() {
        let dir = std::env::temp_dir().join(format!("eventide-put-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("drop.zip");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let entries = [
            ("a.csv", "BANNER\nts,user,v\n1,ann,2\n2,\"b,ob\",3\nEND 2\n"),
            ("b.csv", "BANNER\nts,user,v\n3,cy,4\nEND 1\n"),
        ];
        for (name, text) in entries {
            z.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(text.as_bytes()).unwrap();
        }
        z.finish().unwrap();
        let spec = PipelineSpec::from_toml(
            r#"
            [input]
            format = "csv"
            csv = { header = true }
            header_lines = 1
            footer = { pattern = '^END (?P<count>\d+)$' }
            event_time = { field = "ts" }
            fields = { user = "string", v = "number" }
            [[aggregation]]
            name = "a"
            group_by = ["user"]
            window = { type = "global" }
            aggregates = [{ name = "n", fn = "count" }]
            "#,
        )
        .unwrap();
        let got: Vec<(String, String)> = put_entries(&path, Some(&spec), "user")
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e.partition_key.clone(),
                    String::from_utf8(e.data.clone()).unwrap(),
                )
            })
            .collect();
        let want = [
            ("ann", "1,ann,2"),
            ("b,ob", "2,\"b,ob\",3"),
            ("cy", "3,cy,4"),
        ];
        assert_eq!(
            got,
            want.map(|(k, d)| (k.to_string(), d.to_string())).to_vec()
        );
        assert!(put_entries(&path, Some(&spec), "nope")
            .unwrap_err()
            .to_string()
            .contains("nope"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
