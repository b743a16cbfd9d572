//! Fast, exact number formatting for output rows.
//!
//! `decimals = Some(d)` prints exactly like C's `%.{d}f` (correctly rounded); `None` prints
//! the shortest form that reads back to the same number, with no fractional part for whole
//! numbers (`14`, `2.5`).

/// Appends `v` to `buf`.
///
/// ```
/// use eventide_connectors::format::push_number;
/// let mut s = Vec::new();
/// push_number(&mut s, 3.14159, Some(2));
/// s.push(b' ');
/// push_number(&mut s, 14.0, None);
/// s.push(b' ');
/// push_number(&mut s, 0.125, Some(2)); // a true tie rounds to even, like printf
/// assert_eq!(String::from_utf8(s).unwrap(), "3.14 14 0.12");
/// ```
#[inline]
pub fn push_number(buf: &mut Vec<u8>, v: f64, decimals: Option<u8>) {
    let mut ib = itoa::Buffer::new();
    match decimals {
        None => {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                buf.extend_from_slice(ib.format(v as i64).as_bytes());
            } else {
                use std::io::Write;
                let _ = write!(buf, "{v}");
            }
        }
        Some(d) => {
            const POW: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
            if (d as usize) < POW.len() && v.is_finite() && v.abs() < 1e9 {
                let scaled = v * POW[d as usize];
                // `scaled.round()` without the libm call: |scaled| < 1e18 fits an i64, and
                // from 2^52 up it is already whole, so the conversions are exact.
                let t = scaled as i64;
                let frac = scaled - t as f64;
                let mut n = if frac >= 0.5 {
                    t + 1
                } else if frac <= -0.5 {
                    t - 1
                } else {
                    t
                };
                // Away from a tie the rounding is unambiguous despite the product's error.
                if ((scaled - n as f64).abs() - 0.5).abs() > 1e-6 {
                    // A value that rounds to zero prints without a sign: float drift in a
                    // running sum must not show up as "-0.00".
                    if n < 0 {
                        buf.push(b'-');
                        n = -n;
                    }
                    let digits = ib.format(n).as_bytes();
                    let d = d as usize;
                    if d == 0 {
                        buf.extend_from_slice(digits);
                    } else if digits.len() > d {
                        let (int, frac) = digits.split_at(digits.len() - d);
                        buf.extend_from_slice(int);
                        buf.push(b'.');
                        buf.extend_from_slice(frac);
                    } else {
                        buf.extend_from_slice(b"0.");
                        buf.extend(std::iter::repeat_n(b'0', d - digits.len()));
                        buf.extend_from_slice(digits);
                    }
                    return;
                }
            }
            use std::io::Write;
            let _ = write!(buf, "{v:.*}", d as usize);
        }
    }
}

/// Appends a CSV field, quoted when needed.
#[inline]
pub fn push_csv_field(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        buf.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(v: f64, d: Option<u8>) -> String {
        let mut b = Vec::new();
        push_number(&mut b, v, d);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn matches_std_formatting() {
        for i in -20_000..20_000 {
            let v = i as f64 / 1000.0 + 0.0004;
            if v.abs() < 0.5 {
                continue;
            }
            for d in [0u8, 2, 6] {
                assert_eq!(fmt(v, Some(d)), format!("{v:.*}", d as usize), "{v} {d}");
            }
        }
        assert_eq!(fmt(-0.001, Some(2)), "0.00");
        assert_eq!(fmt(-1.7e-15, Some(6)), "0.000000");
        assert_eq!(fmt(1e20, Some(2)), format!("{:.2}", 1e20));
        assert_eq!(fmt(2.5, None), "2.5");
        assert_eq!(fmt(-3.0, None), "-3");
    }

    #[test]
    fn quotes_csv_fields() {
        let mut b = Vec::new();
        push_csv_field(&mut b, "a,\"b\"");
        assert_eq!(b, b"\"a,\"\"b\"\"\"");
    }
}
