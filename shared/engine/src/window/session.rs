//! Session windows: a gap of inactivity closes a session.
//!
//! An element at `t` opens the proto-session `[t, t + gap)`. It merges with every live
//! session it intersects, where `[a, b)` and `[c, d)` intersect iff `a <= d && c <= b`:
//! sessions that just touch merge, as in Flink. Merging can bridge two sessions when a late
//! element falls between them.
//!
//! ```
//! use eventide_engine::window::session::{touches, Window};
//! let a = Window { start: 0, end: 30 };
//! assert!(touches(a, Window { start: 30, end: 60 }));
//! assert!(!touches(a, Window { start: 31, end: 61 }));
//! ```

pub use super::Window;

/// True when two session windows intersect or touch, so they merge.
#[inline]
pub fn touches(a: Window, b: Window) -> bool {
    a.start <= b.end && b.start <= a.end
}

/// The smallest window covering both.
#[inline]
pub fn cover(a: Window, b: Window) -> Window {
    Window {
        start: a.start.min(b.start),
        end: a.end.max(b.end),
    }
}

/// Indices of the sessions in `live` that merge with `w`, in order.
pub fn merging<'a, T: 'a>(
    live: impl IntoIterator<Item = &'a T>,
    w: Window,
    window_of: impl Fn(&T) -> Window,
) -> smallvec::SmallVec<[usize; 2]> {
    live.into_iter()
        .enumerate()
        .filter(|(_, s)| touches(window_of(s), w))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridging_element_merges_both_neighbours() {
        let live = [Window { start: 0, end: 30 }, Window { start: 50, end: 80 }];
        let w = Window { start: 25, end: 55 };
        assert_eq!(merging(live.iter(), w, |x| *x).as_slice(), &[0, 1]);
    }
}
