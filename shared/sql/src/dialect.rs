//! The SQL dialect: sqlparser's generic dialect with Flink's table versioning
//! (`FOR SYSTEM_TIME AS OF`, for lookup joins).

use sqlparser::dialect::{Dialect, GenericDialect};

/// Flink SQL as far as sqlparser's tokenizer and parser need to know: identifiers quoted
/// with backticks or double quotes, `FOR SYSTEM_TIME AS OF`, aggregate `FILTER (WHERE …)`,
/// `MATCH_RECOGNIZE` (parsed so that it can be refused with its position).
///
/// The parser also asks `dialect_of!(self is GenericDialect)` in places; [`Dialect::dialect`]
/// answers with the generic dialect's type so those paths behave as for it.
#[derive(Debug, Default)]
pub struct FlinkDialect {
    generic: GenericDialect,
}

impl Dialect for FlinkDialect {
    fn dialect(&self) -> std::any::TypeId {
        std::any::TypeId::of::<GenericDialect>()
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.generic.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.generic.is_identifier_part(ch)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_match_recognize(&self) -> bool {
        true
    }

    fn supports_window_function_null_treatment_arg(&self) -> bool {
        self.generic.supports_window_function_null_treatment_arg()
    }

    fn supports_group_by_expr(&self) -> bool {
        self.generic.supports_group_by_expr()
    }
}
