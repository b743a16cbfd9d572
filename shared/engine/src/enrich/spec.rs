//! `[[enrichment]]` sections of a pipeline spec, validated into [`EnrichmentSpec`]s.
//!
//! An enrichment's columns are appended to [`InputSpec::fields`] in declaration order, so
//! group-by, filters, aggregates and rules name them like any input field.
//!
//! ```
//! let spec = eventide_engine::spec::PipelineSpec::from_toml(r#"
//!     [input]
//!     event_time = { field = "t" }
//!     fields = { sub = "string", v = "number" }
//!     [[enrichment]]
//!     name = "plans"
//!     file = { path = "plans.csv" }
//!     join = [{ field = "sub", column = "id" }]
//!     columns = [{ column = "tier", type = "string" }]
//!     on_miss = "drop"
//!     [[aggregation]]
//!     name = "by_tier"
//!     group_by = ["tier"]
//!     window = { type = "tumbling", size = "1m" }
//!     aggregates = [{ name = "n", fn = "count" }]
//! "#).unwrap();
//! assert_eq!(spec.input.field_index("tier"), Some(2));
//! assert_eq!(spec.enrichments[0].name, "plans");
//! ```

use serde::Deserialize;

use crate::duration::parse_ms;
use crate::error::SpecError;
use crate::s3_url::S3Url;
use crate::spec::schema::{FieldType, InputSpec};

/// The file format of a slow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatKind {
    /// Delimited text (Hive's LazySimpleSerDe or OpenCSVSerde).
    Csv,
    /// One JSON object per line (Hive's JsonSerDe).
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

/// How a slow table's objects are encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFormat {
    pub kind: FormatKind,
    /// Field delimiter of CSV.
    pub delimiter: u8,
    /// Quote character of CSV (OpenCSVSerde's `quoteChar`); `None` for none.
    pub quote: Option<u8>,
    /// The first line of every CSV object names the columns.
    pub header: bool,
    /// Column names in file order, for CSV without a header (from the Glue catalog).
    pub columns: Vec<String>,
}

impl TableFormat {
    /// A format of this kind with the usual defaults: `,` delimited, `"` quoted, header row.
    pub fn new(kind: FormatKind) -> Self {
        TableFormat {
            kind,
            delimiter: b',',
            quote: Some(b'"'),
            header: true,
            columns: Vec::new(),
        }
    }

    /// The format a file name suggests (`.csv`, `.tsv`, `.json`/`.jsonl`, `.parquet`).
    pub fn from_extension(path: &str) -> Option<Self> {
        let lower = path.to_ascii_lowercase();
        let ext = lower.rsplit('.').next()?;
        Some(match ext {
            "csv" => TableFormat::new(FormatKind::Csv),
            "tsv" => TableFormat {
                delimiter: b'\t',
                ..TableFormat::new(FormatKind::Csv)
            },
            "json" | "jsonl" | "ndjson" => TableFormat::new(FormatKind::Jsonl),
            "parquet" | "pq" => TableFormat::new(FormatKind::Parquet),
            _ => return None,
        })
    }
}

/// Where a slow table comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// A Glue Data Catalog table: location, columns, format and partitions come from it.
    Glue { database: String, table: String },
    /// Every object under an S3 prefix (`s3://bucket/prefix/`), Hive-partitioned or not.
    S3 {
        location: String,
        format: TableFormat,
    },
    /// A local file or directory (for `eventide replay` and tests).
    File { path: String, format: TableFormat },
    /// Per-key lookups against a DynamoDB table, batched per input batch and cached.
    DynamoDb {
        table: String,
        cache_ttl_ms: i64,
        max_concurrency: usize,
    },
}

/// What happens to a record whose join key has no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMiss {
    /// The record goes on with the enriched columns null (a left join).
    #[default]
    Null,
    /// The record is dropped and counted (an inner join).
    Drop,
    /// The record goes to the dead letters with the enrichment and key as the reason.
    DeadLetter,
}

/// One join condition: record field `field` equals table column `column`.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinKey {
    /// Index into [`InputSpec::fields`].
    pub field: usize,
    pub field_name: String,
    pub field_type: FieldType,
    pub column: String,
}

/// A table column added to records.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrichColumn {
    /// The column's name in the table.
    pub column: String,
    /// The record field it becomes (index into [`InputSpec::fields`]).
    pub field: usize,
    pub name: String,
    pub ty: FieldType,
}

/// One validated enrichment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrichmentSpec {
    pub name: String,
    pub source: SourceSpec,
    pub join: Vec<JoinKey>,
    pub columns: Vec<EnrichColumn>,
    /// How often to check the source for a new version; `None`: load once.
    pub refresh_ms: Option<i64>,
    pub on_miss: OnMiss,
    /// A load with more rows than this fails (the old version stays).
    pub max_rows: u64,
    /// A load whose in-memory table exceeds this many bytes fails (the old version stays).
    pub max_bytes: u64,
}

/// Default bound on a table's rows.
pub const DEFAULT_MAX_ROWS: u64 = 10_000_000;
/// Default bound on a table's memory: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEnrichment {
    name: String,
    #[serde(default)]
    glue: Option<RawGlue>,
    #[serde(default)]
    s3: Option<RawS3>,
    #[serde(default)]
    file: Option<RawFile>,
    #[serde(default)]
    dynamodb: Option<RawDynamo>,
    join: Vec<RawJoin>,
    columns: Vec<RawColumn>,
    #[serde(default)]
    refresh: Option<String>,
    #[serde(default)]
    on_miss: Option<String>,
    #[serde(default)]
    max_rows: Option<u64>,
    #[serde(default)]
    max_bytes: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlue {
    database: String,
    table: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    location: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    header: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    header: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDynamo {
    table: String,
    #[serde(default)]
    cache_ttl: Option<String>,
    #[serde(default)]
    max_concurrency: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawJoin {
    Same(String),
    Map {
        field: String,
        #[serde(default)]
        column: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    column: String,
    #[serde(default, rename = "as")]
    rename: Option<String>,
    #[serde(rename = "type")]
    ty: FieldType,
}

fn format_of(
    p: &str,
    format: Option<&str>,
    path: &str,
    delimiter: Option<&str>,
    header: Option<bool>,
) -> Result<TableFormat, SpecError> {
    let mut f = match format {
        Some("csv") => TableFormat::new(FormatKind::Csv),
        Some("json") | Some("jsonl") => TableFormat::new(FormatKind::Jsonl),
        Some("parquet") => TableFormat::new(FormatKind::Parquet),
        Some(other) => {
            return Err(SpecError::invalid(
                format!("{p}.format"),
                format!("unknown format {other:?}; use \"csv\", \"jsonl\" or \"parquet\""),
            ))
        }
        None => TableFormat::from_extension(path).ok_or_else(|| {
            SpecError::invalid(
                format!("{p}.format"),
                format!("cannot tell the format of {path:?} from its name; give format = \"csv\", \"jsonl\" or \"parquet\""),
            )
        })?,
    };
    if let Some(d) = delimiter {
        if f.kind != FormatKind::Csv {
            return Err(SpecError::invalid(
                format!("{p}.delimiter"),
                "only applies to csv",
            ));
        }
        let d = match d {
            "\\t" | "\t" => b'\t',
            d if d.len() == 1 => d.as_bytes()[0],
            _ => {
                return Err(SpecError::invalid(
                    format!("{p}.delimiter"),
                    format!("{d:?} is not a single ASCII character"),
                ))
            }
        };
        f.delimiter = d;
    }
    if let Some(h) = header {
        if f.kind != FormatKind::Csv {
            return Err(SpecError::invalid(
                format!("{p}.header"),
                "only applies to csv",
            ));
        }
        if !h {
            return Err(SpecError::invalid(
                format!("{p}.header"),
                "csv without a header row needs its column names: catalogue it in Glue",
            ));
        }
    }
    Ok(f)
}

fn bytes_value(field: &str, v: &toml::Value) -> Result<u64, SpecError> {
    let bad = || {
        SpecError::invalid(
            field,
            "expected a number of bytes or a size such as \"512MiB\" or \"2GiB\"",
        )
    };
    match v {
        toml::Value::Integer(n) if *n > 0 => Ok(*n as u64),
        toml::Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let n: u64 = s[..split].parse().map_err(|_| bad())?;
            let mult: u64 = match s[split..].trim() {
                "" | "B" => 1,
                "KiB" | "KB" | "K" => 1 << 10,
                "MiB" | "MB" | "M" => 1 << 20,
                "GiB" | "GB" | "G" => 1 << 30,
                _ => return Err(bad()),
            };
            n.checked_mul(mult).filter(|&b| b > 0).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

/// Validates the `[[enrichment]]` sections against the input, appending each enrichment's
/// columns to `input.fields`.
pub(crate) fn validate(
    raw: Vec<RawEnrichment>,
    input: &mut InputSpec,
) -> Result<Vec<EnrichmentSpec>, SpecError> {
    let mut out: Vec<EnrichmentSpec> = Vec::with_capacity(raw.len());
    let decoded = input.fields.len();
    for (i, e) in raw.into_iter().enumerate() {
        let p = format!("enrichment[{i}]");
        SpecError::check_name(&p, &e.name)?;
        if out.iter().any(|x| x.name == e.name) {
            return Err(SpecError::invalid(
                format!("{p}.name"),
                format!("duplicate name {:?}", e.name),
            ));
        }
        let p = format!("enrichment[{i}] ({})", e.name);
        let given = [
            e.glue.is_some(),
            e.s3.is_some(),
            e.file.is_some(),
            e.dynamodb.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() != 1 {
            return Err(SpecError::invalid(
                p.clone(),
                "give exactly one source: glue, s3, file or dynamodb",
            ));
        }
        let source = if let Some(g) = e.glue {
            if g.database.is_empty() || g.table.is_empty() {
                return Err(SpecError::invalid(
                    format!("{p}.glue"),
                    "database and table must be non-empty",
                ));
            }
            SourceSpec::Glue {
                database: g.database,
                table: g.table,
            }
        } else if let Some(s) = e.s3 {
            if let Err(e) = S3Url::parse(&s.location) {
                return Err(SpecError::invalid(
                    format!("{p}.s3.location"),
                    e.to_string(),
                ));
            }
            let format = if s.format.is_none() && s.location.ends_with('/') {
                return Err(SpecError::invalid(
                    format!("{p}.s3.format"),
                    "required for a prefix: \"csv\", \"jsonl\" or \"parquet\"",
                ));
            } else {
                format_of(
                    &format!("{p}.s3"),
                    s.format.as_deref(),
                    &s.location,
                    s.delimiter.as_deref(),
                    s.header,
                )?
            };
            SourceSpec::S3 {
                location: s.location,
                format,
            }
        } else if let Some(f) = e.file {
            let format = format_of(
                &format!("{p}.file"),
                f.format.as_deref(),
                &f.path,
                f.delimiter.as_deref(),
                f.header,
            )?;
            SourceSpec::File {
                path: f.path,
                format,
            }
        } else if let Some(d) = e.dynamodb {
            if e.refresh.is_some() {
                return Err(SpecError::invalid(
                    format!("{p}.refresh"),
                    "a dynamodb lookup is live; use dynamodb.cache_ttl instead",
                ));
            }
            let cache_ttl_ms = match &d.cache_ttl {
                Some(s) => parse_ms(&format!("{p}.dynamodb.cache_ttl"), s)?,
                None => 60_000,
            };
            let max_concurrency = d.max_concurrency.unwrap_or(4);
            if max_concurrency == 0 {
                return Err(SpecError::invalid(
                    format!("{p}.dynamodb.max_concurrency"),
                    "must be greater than zero",
                ));
            }
            SourceSpec::DynamoDb {
                table: d.table,
                cache_ttl_ms,
                max_concurrency,
            }
        } else {
            unreachable!("exactly one source was checked above")
        };
        if e.join.is_empty() {
            return Err(SpecError::invalid(
                format!("{p}.join"),
                "at least one join field is required",
            ));
        }
        let mut join = Vec::with_capacity(e.join.len());
        for (j, k) in e.join.into_iter().enumerate() {
            let (field_name, column) = match k {
                RawJoin::Same(f) => (f.clone(), f),
                RawJoin::Map { field, column } => {
                    let c = column.unwrap_or_else(|| field.clone());
                    (field, c)
                }
            };
            let field = input.field_index(&field_name).ok_or_else(|| {
                SpecError::invalid(
                    format!("{p}.join[{j}].field"),
                    format!("unknown field {field_name:?}; declare it in input.fields or in an earlier enrichment"),
                )
            })?;
            if join.iter().any(|x: &JoinKey| x.column == column) {
                return Err(SpecError::invalid(
                    format!("{p}.join[{j}].column"),
                    format!("column {column:?} is joined twice"),
                ));
            }
            join.push(JoinKey {
                field,
                field_type: input.fields[field].1,
                field_name,
                column,
            });
        }
        if matches!(source, SourceSpec::DynamoDb { .. }) && join.iter().any(|k| k.field >= decoded)
        {
            return Err(SpecError::invalid(
                format!("{p}.join"),
                "a dynamodb lookup joins on input fields, not on enriched ones",
            ));
        }
        if matches!(source, SourceSpec::DynamoDb { .. }) && join.len() > 2 {
            return Err(SpecError::invalid(
                format!("{p}.join"),
                "a dynamodb key has one or two attributes (partition and sort key)",
            ));
        }
        if e.columns.is_empty() {
            return Err(SpecError::invalid(
                format!("{p}.columns"),
                "at least one column is required",
            ));
        }
        let mut columns: Vec<EnrichColumn> = Vec::with_capacity(e.columns.len());
        for (j, c) in e.columns.into_iter().enumerate() {
            let name = c.rename.unwrap_or_else(|| c.column.clone());
            if name.is_empty() || c.column.is_empty() {
                return Err(SpecError::invalid(
                    format!("{p}.columns[{j}]"),
                    "column and as must be non-empty",
                ));
            }
            if input.field_index(&name).is_some() || name == input.time_field {
                return Err(SpecError::invalid(
                    format!("{p}.columns[{j}]"),
                    format!("field {name:?} already exists; rename it with `as`"),
                ));
            }
            columns.push(EnrichColumn {
                column: c.column,
                field: input.fields.len(),
                name: name.clone(),
                ty: c.ty,
            });
            input.fields.push((name, c.ty));
        }
        let refresh_ms = e
            .refresh
            .as_deref()
            .map(|s| parse_ms(&format!("{p}.refresh"), s))
            .transpose()?;
        if refresh_ms.is_some_and(|r| r < 1000) {
            return Err(SpecError::invalid(
                format!("{p}.refresh"),
                "must be at least 1s",
            ));
        }
        let on_miss = match e.on_miss.as_deref() {
            None | Some("null") => OnMiss::Null,
            Some("drop") => OnMiss::Drop,
            Some("dead_letter") => OnMiss::DeadLetter,
            Some(other) => {
                return Err(SpecError::invalid(
                    format!("{p}.on_miss"),
                    format!("unknown policy {other:?}; use \"null\", \"drop\" or \"dead_letter\""),
                ))
            }
        };
        let max_rows = e.max_rows.unwrap_or(DEFAULT_MAX_ROWS);
        if max_rows == 0 || max_rows > u32::MAX as u64 {
            return Err(SpecError::invalid(
                format!("{p}.max_rows"),
                format!("must be between 1 and {}", u32::MAX),
            ));
        }
        let max_bytes = e
            .max_bytes
            .as_ref()
            .map(|v| bytes_value(&format!("{p}.max_bytes"), v))
            .transpose()?
            .unwrap_or(DEFAULT_MAX_BYTES);
        out.push(EnrichmentSpec {
            name: e.name,
            source,
            join,
            columns,
            refresh_ms,
            on_miss,
            max_rows,
            max_bytes,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::spec::PipelineSpec;

    fn spec(enrichment: &str) -> Result<PipelineSpec, String> {
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
        .map_err(|e| e.to_string())
    }

    #[test]
    fn validates_sources_columns_and_policies() {
        let s = spec(
            r#"[[enrichment]]
            name = "p"
            glue = { database = "db", table = "subs" }
            join = ["sub"]
            columns = [{ column = "limit", as = "sub_limit", type = "number" }, { column = "tier", type = "string" }]
            refresh = "5m"
            on_miss = "dead_letter"
            max_bytes = "64MiB""#,
        )
        .unwrap();
        let e = &s.enrichments[0];
        assert_eq!(e.join[0].column, "sub");
        assert_eq!(e.columns[0].name, "sub_limit");
        assert_eq!(e.columns[0].field, 2);
        assert_eq!(s.input.fields[3].0, "tier");
        assert_eq!(e.refresh_ms, Some(300_000));
        assert_eq!(e.max_bytes, 64 << 20);
        assert_eq!(e.on_miss, super::OnMiss::DeadLetter);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"[[enrichment]]
                name = "p"
                join = ["sub"]
                columns = [{ column = "c", type = "string" }]"#,
                "`enrichment[0] (p)`: give exactly one source",
            ),
            (
                r#"[[enrichment]]
                name = "p"
                file = { path = "x.csv" }
                join = ["nope"]
                columns = [{ column = "c", type = "string" }]"#,
                "`enrichment[0] (p).join[0].field`: unknown field \"nope\"",
            ),
            (
                r#"[[enrichment]]
                name = "p"
                file = { path = "x.csv" }
                join = ["sub"]
                columns = [{ column = "v", type = "number" }]"#,
                "`enrichment[0] (p).columns[0]`: field \"v\" already exists",
            ),
            (
                r#"[[enrichment]]
                name = "p"
                file = { path = "x.csv" }
                join = ["sub"]
                columns = [{ column = "c", type = "string" }]
                on_miss = "ignore""#,
                "`enrichment[0] (p).on_miss`: unknown policy \"ignore\"",
            ),
            (
                r#"[[enrichment]]
                name = "p"
                s3 = { location = "s3://b/prefix/" }
                join = ["sub"]
                columns = [{ column = "c", type = "string" }]"#,
                "`enrichment[0] (p).s3.format`: required for a prefix",
            ),
            (
                r#"[[enrichment]]
                name = "p"
                dynamodb = { table = "t" }
                join = ["sub"]
                columns = [{ column = "c", type = "string" }]
                refresh = "1m""#,
                "`enrichment[0] (p).refresh`: a dynamodb lookup is live",
            ),
            (
                r#"[[enrichment]]
                name = "p"
                file = { path = "x.txt" }
                join = ["sub"]
                columns = [{ column = "c", type = "string" }]"#,
                "`enrichment[0] (p).file.format`: cannot tell the format",
            ),
            (
                r#"[[enrichment]]
                name = "p"
                file = { path = "x.csv" }
                join = ["sub"]
                columns = [{ column = "c", type = "string" }]
                max_bytes = "lots""#,
                "`enrichment[0] (p).max_bytes`",
            ),
        ];
        for (toml, want) in cases {
            let err = spec(toml).unwrap_err();
            assert!(err.contains(want), "{err} does not contain {want}");
        }
    }

    #[test]
    fn enriched_fields_are_usable_by_aggregations() {
        let err = PipelineSpec::from_toml(
            r#"
            [input]
            event_time = { field = "t" }
            fields = { sub = "string" }
            [[aggregation]]
            name = "a"
            group_by = ["tier"]
            window = { type = "tumbling", size = "1m" }
            aggregates = [{ name = "n", fn = "count" }]
            "#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field \"tier\""));
        let ok = PipelineSpec::from_toml(
            r#"
            [input]
            event_time = { field = "t" }
            fields = { sub = "string" }
            [[enrichment]]
            name = "p"
            file = { path = "p.jsonl" }
            join = [{ field = "sub", column = "id" }]
            columns = [{ column = "tier", type = "string" }, { column = "limit", type = "number" }]
            [[aggregation]]
            name = "a"
            group_by = ["tier"]
            filter = 'tier == "gold"'
            window = { type = "tumbling", size = "1m" }
            aggregates = [{ name = "s", fn = "sum", field = "limit" }]
            "#,
        )
        .unwrap();
        assert_eq!(ok.aggregations[0].group_by, vec![1]);
    }
}
