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
                return;
            }
            if v.is_finite() && !short_exact_expansion(v) {
                // ryu's shortest round-trip digits are Display's; only its layout differs
                // (an exponent for very large or small numbers), and those keep Display's.
                // The one case where the two pick different digits is a double exactly
                // halfway between two shortest candidates (ryu rounds to even, Display
                // up), possible only for a double whose exact expansion is short: those
                // keep Display too.
                let mut rb = ryu::Buffer::new();
                let s = rb.format_finite(v);
                if !s.contains('e') && !s.ends_with(".0") {
                    buf.extend_from_slice(s.as_bytes());
                    return;
                }
            }
            use std::io::Write;
            let _ = write!(buf, "{v}");
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

/// True when `v`'s exact decimal expansion has at most 18 significant digits. Only such a
/// double can lie exactly halfway between two shortest decimal candidates (its expansion
/// minus the final 5); every other one has a long expansion, as most decimal values do.
///
/// A finite `v` is `m · 2^e` with `m` odd; for `e < 0` its expansion is `m · 5^-e` over
/// `10^-e`, whose significant digits are those of the integer `m · 5^-e`.
fn short_exact_expansion(v: f64) -> bool {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (mut m, mut e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), exp - 1075)
    };
    if m == 0 {
        return false;
    }
    let tz = m.trailing_zeros();
    m >>= tz;
    e += tz as i32;
    if e >= 0 {
        return v.abs() < 1e18;
    }
    let n = -e;
    // 5^26 alone has 19 digits.
    if n > 25 {
        return false;
    }
    let digits = u128::from(m) * 5u128.pow(n as u32);
    digits < 1_000_000_000_000_000_000
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
    fn shortest_form_is_display_for_every_kind_of_double() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let check = |v: f64| {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                assert_eq!(fmt(v, None), format!("{}", v as i64), "{v:e}");
            } else {
                assert_eq!(fmt(v, None), format!("{v}"), "{v:e}");
            }
        };
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Any bit pattern (every exponent, subnormals, NaN and infinities) …
            check(f64::from_bits(x));
            // … and decimal-looking values as sums print them.
            check((x % 10_000_000) as f64 / 100.0 - 50_000.0);
            check((x % 1_000_000_007) as f64 * 1e-7);
        }
        for v in [
            6_632_827_120_354_249.0 / 4.0, // 1658206780088562.25: a tie at 17 digits
            99_999_999_999_999.9,
            1e15,
            1e16,
            1.5e16,
            1e-5,
            1e-6,
            1.2345e-7,
            0.1 + 0.2,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            check(v);
            check(-v);
        }
    }

    #[test]
    fn quotes_csv_fields() {
        let mut b = Vec::new();
        push_csv_field(&mut b, "a,\"b\"");
        assert_eq!(b, b"\"a,\"\"b\"\"\"");
    }
}
