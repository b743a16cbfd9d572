//! Where in event time: window assignment.
//!
//! * Tumbling and sliding windows are cut into non-overlapping **slices** of length
//!   `gcd(size, slide)` ([`Slicing`]). Each event updates exactly one slice and a window's
//!   value is combined from its slices, so state per key is bounded by the slices a window
//!   spans, never by the number of events.
//! * Cumulate windows (Flink's `CUMULATE`) are a family of windows sharing a start: every
//!   `size` period starts windows ending each `step` into it, `[start, start + step)`,
//!   `[start, start + 2·step)`, … `[start, start + size)`. They are sliced by `step`.
//! * Session windows ([`session`]) merge on overlap; sessions that just touch merge too.
//! * Count windows hold the last N elements of a key.
//! * Rows windows are Flink SQL's `OVER (… ROWS BETWEEN n PRECEDING AND CURRENT ROW)`: one
//!   output row per input row, over the row and the `n` rows before it in event-time order
//!   ([`crate::operator::rows`]).
//! * The global window holds everything and fires at the end of input.
//!
//! Windows are half-open `[start, end)` in epoch milliseconds. A window has fired once
//! `end - 1 <= watermark`.

pub mod session;

/// The window of an aggregation, as written in its spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// Tumbling windows are sliding windows whose slide equals their size.
    Sliding {
        size: i64,
        slide: i64,
    },
    /// Windows `[floor(t, size), floor(t, size) + k·step)` for `k = 1 … size/step`.
    Cumulate {
        size: i64,
        step: i64,
    },
    Session {
        gap: i64,
    },
    Count {
        size: u64,
        slide: u64,
    },
    /// Each row with the `preceding` rows before it, in (event time, arrival) order.
    Rows {
        preceding: u64,
    },
    Global,
}

/// The window in the spec's terms: `tumbling 15m`, `sliding 2h every 15m`, `cumulate 1d
/// every 1h`, `session gap 30m`, `count 10 every 1`, `rows 7 preceding`, `global`.
///
/// ```
/// use eventide_engine::window::WindowSpec;
/// assert_eq!(WindowSpec::Sliding { size: 7_200_000, slide: 900_000 }.to_string(), "sliding 2h every 15m");
/// ```
impl std::fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::duration::format_ms;
        match *self {
            WindowSpec::Sliding { size, slide } if size == slide => {
                write!(f, "tumbling {}", format_ms(size))
            }
            WindowSpec::Sliding { size, slide } => {
                write!(f, "sliding {} every {}", format_ms(size), format_ms(slide))
            }
            WindowSpec::Cumulate { size, step } => {
                write!(f, "cumulate {} every {}", format_ms(size), format_ms(step))
            }
            WindowSpec::Session { gap } => write!(f, "session gap {}", format_ms(gap)),
            WindowSpec::Count { size, slide } => write!(f, "count {size} every {slide}"),
            WindowSpec::Rows { preceding } => write!(f, "rows {preceding} preceding"),
            WindowSpec::Global => write!(f, "global"),
        }
    }
}

/// Event time of the global window's start and end.
pub const GLOBAL_START: i64 = i64::MIN;
/// The global window ends at +∞ and fires only when the watermark reaches +∞.
pub const GLOBAL_END: i64 = i64::MAX;

/// A window: `[start, end)` in epoch ms.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// True once the watermark has passed the window: `end - 1 <= wm`.
    #[inline]
    pub fn fired_at(&self, wm: i64) -> bool {
        self.end - 1 <= wm
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Floor division toward −∞ for possibly negative times.
#[inline]
pub fn floor_to(t: i64, step: i64) -> i64 {
    t - t.rem_euclid(step)
}

/// Slice arithmetic of tumbling, sliding, cumulate and global windows.
///
/// ```
/// use eventide_engine::window::Slicing;
/// let s = Slicing::sliding(120, 15);
/// assert_eq!(s.slice_len, 15);
/// assert_eq!(s.slice_start(100), 90);
/// // The windows containing the slice [90, 105) end at 105, 120, ..., 210.
/// assert_eq!(s.first_end_containing(90), 105);
/// assert_eq!(s.last_end_containing(90), 210);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slicing {
    pub size: i64,
    pub slide: i64,
    pub slice_len: i64,
    /// True for the single global window.
    pub global: bool,
    /// True for cumulate windows: `slide` is the step, and every window of a `size` period
    /// starts at the period's start.
    pub cumulate: bool,
}

impl Slicing {
    /// Sliding (or, with `slide == size`, tumbling) windows.
    pub fn sliding(size: i64, slide: i64) -> Self {
        Slicing {
            size,
            slide,
            slice_len: gcd(size, slide),
            global: false,
            cumulate: false,
        }
    }

    /// Cumulate windows of `size` growing by `step` (`size` a multiple of `step`).
    ///
    /// ```
    /// use eventide_engine::window::{Slicing, Window};
    /// let s = Slicing::cumulate(30, 10);
    /// let w: Vec<Window> = s.windows_containing(42).collect();
    /// assert_eq!(w, [Window { start: 30, end: 50 }, Window { start: 30, end: 60 }]);
    /// ```
    pub fn cumulate(size: i64, step: i64) -> Self {
        Slicing {
            size,
            slide: step,
            slice_len: step,
            global: false,
            cumulate: true,
        }
    }

    /// The global window: one slice, one window.
    pub fn global() -> Self {
        Slicing {
            size: GLOBAL_END,
            slide: GLOBAL_END,
            slice_len: GLOBAL_END,
            global: true,
            cumulate: false,
        }
    }

    /// Start of the slice holding event time `t`.
    #[inline]
    pub fn slice_start(&self, t: i64) -> i64 {
        if self.global {
            GLOBAL_START
        } else {
            floor_to(t, self.slice_len)
        }
    }

    /// End of the earliest window that contains the slice starting at `s`.
    #[inline]
    pub fn first_end_containing(&self, s: i64) -> i64 {
        if self.global {
            return GLOBAL_END;
        }
        if self.cumulate {
            // Every step boundary ends a window.
            return floor_to(s, self.slide) + self.slide;
        }
        // Window ends are start + size with start a multiple of slide.
        // Smallest end > s: end = floor_to(s - size, slide) + slide + size.
        floor_to(s - self.size, self.slide) + self.slide + self.size
    }

    /// End of the latest window that contains the slice starting at `s`.
    #[inline]
    pub fn last_end_containing(&self, s: i64) -> i64 {
        if self.global {
            return GLOBAL_END;
        }
        if self.cumulate {
            return floor_to(s, self.size) + self.size;
        }
        floor_to(s, self.slide) + self.size
    }

    /// The window ending at `end`.
    #[inline]
    pub fn window_ending(&self, end: i64) -> Window {
        if self.global {
            Window {
                start: GLOBAL_START,
                end: GLOBAL_END,
            }
        } else if self.cumulate {
            Window {
                start: floor_to(end - 1, self.size),
                end,
            }
        } else {
            Window {
                start: end - self.size,
                end,
            }
        }
    }

    /// All windows containing event time `t`, earliest first.
    pub fn windows_containing(&self, t: i64) -> impl Iterator<Item = Window> + '_ {
        let s = self.slice_start(t);
        let first = self.first_end_containing(s);
        let last = self.last_end_containing(s);
        let step = if self.global { 1 } else { self.slide };
        let n = if self.global {
            1
        } else {
            (last - first) / step + 1
        };
        (0..n).map(move |i| self.window_ending(first + i * step))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_use_gcd() {
        let s = Slicing::sliding(72 * 3_600_000, 3_600_000);
        assert_eq!(s.slice_len, 3_600_000);
        let s = Slicing::sliding(10, 4);
        assert_eq!(s.slice_len, 2);
    }

    #[test]
    fn windows_containing_matches_definition() {
        for (size, slide) in [(10, 10), (10, 5), (10, 4), (6, 1), (7, 3)] {
            let s = Slicing::sliding(size, slide);
            for t in -30..30 {
                let got: Vec<Window> = s.windows_containing(t).collect();
                let mut want = Vec::new();
                let mut start = floor_to(t - size, slide);
                while start <= t {
                    if start + size > t {
                        want.push(Window {
                            start,
                            end: start + size,
                        });
                    }
                    start += slide;
                }
                assert_eq!(got, want, "size {size} slide {slide} t {t}");
            }
        }
    }

    #[test]
    fn cumulate_windows_match_definition() {
        for (size, step) in [(10, 10), (10, 5), (12, 4), (6, 1)] {
            let s = Slicing::cumulate(size, step);
            for t in -30..30 {
                let got: Vec<Window> = s.windows_containing(t).collect();
                let start = floor_to(t, size);
                let want: Vec<Window> = (1..=size / step)
                    .map(|k| Window {
                        start,
                        end: start + k * step,
                    })
                    .filter(|w| w.end > t)
                    .collect();
                assert_eq!(got, want, "size {size} step {step} t {t}");
                for w in &got {
                    assert_eq!(s.window_ending(w.end), *w);
                }
            }
        }
    }

    #[test]
    fn fired_boundary_is_end_minus_one() {
        let w = Window { start: 0, end: 10 };
        assert!(!w.fired_at(8));
        assert!(w.fired_at(9));
    }
}
