//! What the SQL test files share (each includes it with `mod common;` and uses part of it).

#![allow(dead_code)]

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

/// Checks that each case's text, after `prefix`, is an error at the case's line and column
/// whose message contains its needle; fails with every case that is not, together.
pub fn assert_errors(prefix: &str, cases: &[(String, u64, u64, &str)]) {
    let mut failures = Vec::new();
    for (text, line, column, needle) in cases {
        let got = match eventide_sql::compile(&format!("{prefix}{text}")) {
            Ok(c) => format!("accepted:\n{}", c.toml),
            Err(eventide_sql::SqlError::At {
                line: l,
                column: c,
                message,
            }) if (l, c) == (*line, *column) && message.contains(needle) => continue,
            Err(e) => e.to_string(),
        };
        failures.push(format!(
            "{text}\n  expected {line}:{column} containing {needle:?}\n  got      {got}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
