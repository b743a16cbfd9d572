//! What the SQL test files share (each includes it with `mod common;`).

/// The line, column and message of the error `text` compiles to.
///
/// # Panics
/// When `text` compiles, or when its error has no position: either fails the test.
pub fn error(text: &str) -> (u64, u64, String) {
    match eventide_sql::compile(text) {
        Ok(c) => panic!("accepted:\n{text}\n{}", c.toml),
        Err(eventide_sql::SqlError::At {
            line,
            column,
            message,
        }) => (line, column, message),
        Err(e) => panic!("no position: {e}\n{text}"),
    }
}
