//! Human-readable durations in pipeline specs: `"500ms"`, `"30s"`, `"15m"`, `"2h"`, `"3d"`.

use crate::error::SpecError;

/// Writes milliseconds as a spec duration, the inverse of [`parse_ms`]: `"1h30m"`,
/// `"500ms"`, `"0s"`.
///
/// ```
/// use eventide_engine::duration::{format_ms, parse_ms};
/// assert_eq!(format_ms(5_400_000), "1h30m");
/// assert_eq!(format_ms(1_500), "1s500ms");
/// assert_eq!(parse_ms("x", &format_ms(93_784_005)).unwrap(), 93_784_005);
/// ```
pub fn format_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = if ms < 0 {
        "-".to_string()
    } else {
        String::new()
    };
    let mut rest = ms.unsigned_abs();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// Writes an instant in epoch milliseconds as RFC 3339 in UTC (`2026-01-01T00:00:00.123Z`),
/// or as the raw number when it is outside the calendar's years.
///
/// ```
/// use eventide_engine::duration::format_instant;
/// assert_eq!(format_instant(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
/// assert_eq!(format_instant(i64::MAX), "9223372036854775807 ms since the epoch");
/// ```
pub fn format_instant(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
    let text = at.ok().and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    text.unwrap_or_else(|| format!("{ms} ms since the epoch"))
}

/// Parses a duration string into milliseconds.
///
/// ```
/// use eventide_engine::duration::parse_ms;
/// assert_eq!(parse_ms("window.size", "15m").unwrap(), 900_000);
/// assert_eq!(parse_ms("x", "1h30m").unwrap(), 5_400_000);
/// assert!(parse_ms("window.size", "15 parsecs").is_err());
/// ```
pub fn parse_ms(field: &str, s: &str) -> Result<i64, SpecError> {
    let bad = |reason: &str| {
        SpecError::invalid(
            field,
            format!(
                "{reason} in duration {s:?} (use e.g. \"500ms\", \"30s\", \"15m\", \"2h\", \"3d\")"
            ),
        )
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(bad("empty value"));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(bad("expected a number"));
        }
        let n: i64 = s[start..i].parse().map_err(|_| bad("number too large"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &s[ustart..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(bad("missing unit")),
            _ => return Err(bad("unknown unit")),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| bad("duration too large"))?;
    }
    Ok(total)
}
