//! The bottom layer of the spec: the input schema, the fields a pipeline reads and their
//! types. Everything that reads a record (codecs, filters, rule expressions, enrichment
//! tables) depends on this and nothing else of the spec.

use serde::Deserialize;

/// The type of an input field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Number,
    Bool,
}

/// How the event time is written in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    #[default]
    EpochMs,
    Rfc3339,
}

/// The input schema: the fields a pipeline reads.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub fields: Vec<(String, FieldType)>,
    pub time_field: String,
    pub time_format: TimeFormat,
    /// Index into `fields` of the partition field, if any.
    pub partition: Option<usize>,
}

impl InputSpec {
    /// The index of a field by name.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|(n, _)| n == name)
    }
}
