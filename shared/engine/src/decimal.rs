//! Exact decimals in `f64`: the shortest decimal form of a double, shared by the exact
//! sums ([`crate::aggregate::Sum`]) and the `decimal(p, s)` casts of [`crate::expr`].

/// Largest number of decimals a sum is kept exact at.
pub(crate) const MAX_SCALE: u8 = 9;

/// `10^k` for `k <= MAX_SCALE`, as integers and as floats (all exact).
pub(crate) const POW10_I: [i64; MAX_SCALE as usize + 1] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];
pub(crate) const POW10_F: [f64; MAX_SCALE as usize + 1] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// Integers up to this magnitude convert to `f64` exactly.
pub(crate) const EXACT_F64: i64 = 1 << 53;

/// The shortest decimal form of `v` with at most [`MAX_SCALE`] decimals, as `(m, k)` for
/// `m / 10^k`; `None` when it has more, or is beyond 2^53 units.
#[inline]
pub(crate) fn shortest_decimal(v: f64) -> Option<(i64, u8)> {
    decimal(v, 0)
}

/// `v` as `(m, k)` with `v` the `f64` nearest to `m / 10^k`, for the smallest `k` from
/// `min_scale` to [`MAX_SCALE`]; `None` when `v` is no such decimal or too large.
#[inline]
pub(crate) fn decimal(v: f64, min_scale: u8) -> Option<(i64, u8)> {
    for k in min_scale..=MAX_SCALE {
        let p = POW10_F[k as usize];
        let m = (v * p).round();
        if m.abs() > EXACT_F64 as f64 {
            return None;
        }
        if m / p == v {
            return Some((m as i64, k));
        }
    }
    None
}
