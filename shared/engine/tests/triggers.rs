//! Triggers against hand-computed panes, through the public `Pipeline` API.
//!
//! Every case is a short script of JSON lines (events, `advance_watermark`,
//! `advance_processing_time`) for one key; the expected panes were worked out by hand from
//! the trigger's definition (docs/pipeline-spec.md, "Triggers") and list the processing time
//! at which each pane came out, so a pane that fires too late is caught.

use eventide_engine::pane::{Emit, Pane};
use eventide_engine::trigger::Timing;
use eventide_engine::{Output, Pipeline, PipelineSpec};

/// One emitted pane: window, sum, timing, index, retraction, and the processing time.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    start: i64,
    end: i64,
    sum: Option<f64>,
    timing: Timing,
    index: u32,
    retraction: bool,
    now: i64,
}

/// What a run emitted: its panes as rows, and how many records were late.
#[derive(Default)]
struct Recorder {
    rows: Vec<Row>,
    late: usize,
    now: i64,
}

impl Emit for Recorder {
    fn pane(&mut self, p: &Pane<'_>) {
        self.rows.push(Row {
            start: p.window.start,
            end: p.window.end,
            sum: p.values[0],
            timing: p.timing,
            index: p.index,
            retraction: p.retraction,
            now: self.now,
        });
    }
}

impl Output for Recorder {
    fn late(&mut self, _aggregation: usize, _raw: &[u8]) {
        self.late += 1;
    }
}

/// The spec of one aggregation `s` (sum of `v` per `k`) with `window` and `extra` lines.
fn spec(window: &str, extra: &str) -> String {
    format!(
        "[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ k = \"string\", v = \"number\" }}\n\
         [watermark]\nstrategy = \"explicit\"\n\
         [limits]\nmin_processing_time_period = \"1ms\"\n\
         [[aggregation]]\nname = \"s\"\ngroup_by = [\"k\"]\nwindow = {window}\n\
         aggregates = [{{ name = \"sum\", fn = \"sum\", field = \"v\" }}]\n{extra}\n"
    )
}

/// A script step.
enum Step {
    /// An event at event time `t` with value `v`.
    E(i64, i64),
    /// The watermark moves to this time.
    W(i64),
    /// Processing time moves to this time.
    P(i64),
}
use Step::{E, P, W};

/// Runs a script, then the end of input (watermark to +∞).
fn run(spec: &str, steps: &[Step]) -> Recorder {
    let spec = PipelineSpec::from_toml(spec).unwrap_or_else(|e| panic!("{e}\n{spec}"));
    let mut p = Pipeline::new(spec);
    let mut out = Recorder::default();
    for s in steps {
        let line = match s {
            E(t, v) => format!(r#"{{"k":"a","t":{t},"v":{v}}}"#),
            W(w) => format!(r#"{{"advance_watermark":{w}}}"#),
            P(n) => {
                out.now = *n;
                format!(r#"{{"advance_processing_time":{n}}}"#)
            }
        };
        p.process_line(line.as_bytes(), "", &mut out)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    p.finish(&mut out);
    out
}

/// A pane row: `(start, end, sum, timing, index, retraction, now)`.
fn r(
    start: i64,
    end: i64,
    sum: f64,
    timing: Timing,
    index: u32,
    retraction: bool,
    now: i64,
) -> Row {
    Row {
        start,
        end,
        sum: Some(sum),
        timing,
        index,
        retraction,
        now,
    }
}

use Timing::{Early as EARLY, Late as LATE, OnTime as ON_TIME};

const MODES: [&str; 3] = ["discarding", "accumulating", "retracting"];

// ---------------------------------------------------------------------------------------------
// Issue 12, item 1: merging sessions keep their pending trigger state
// ---------------------------------------------------------------------------------------------

/// Sessions [0,10) and [20,30) each wait for an early pane 5 ms after their first element
/// (due at 5 and 7). The 3 at t=10 bridges them at processing time 3: the merged session
/// [0,30) keeps the earliest pending firing, at 5, instead of re-arming one at 3 + 5 = 8.
fn early_delay_steps() -> Vec<Step> {
    vec![
        P(0),
        E(0, 1),
        P(2),
        E(20, 2),
        P(3),
        E(10, 3),
        P(5),
        E(5, 4),
        W(100),
        P(20),
    ]
}

#[test]
fn merged_sessions_keep_the_earliest_pending_early_firing() {
    let want = |mode: &str| -> Vec<Row> {
        match mode {
            "discarding" => vec![
                r(0, 30, 6.0, EARLY, 0, false, 5),
                r(0, 30, 4.0, ON_TIME, 1, false, 5),
            ],
            "accumulating" => vec![
                r(0, 30, 6.0, EARLY, 0, false, 5),
                r(0, 30, 10.0, ON_TIME, 1, false, 5),
            ],
            _ => vec![
                r(0, 30, 6.0, EARLY, 0, false, 5),
                r(0, 30, 6.0, ON_TIME, 1, true, 5),
                r(0, 30, 10.0, ON_TIME, 1, false, 5),
            ],
        }
    };
    for mode in MODES {
        let s = spec(
            r#"{ type = "session", gap = "10ms" }"#,
            &format!(
                "allowed_lateness = \"1d\"\naccumulation = \"{mode}\"\n\
                 trigger = {{ early = {{ after = \"5ms\" }} }}"
            ),
        );
        let got = run(&s, &early_delay_steps());
        assert_eq!(got.rows, want(mode), "{mode}");
    }
}

/// After the on-time panes of [0,10) and [20,30), late elements arm delayed late panes (due
/// at 15 and 17); the late 3 at t=10 bridges the sessions at 13 and the merged session
/// fires at 15, not at 13 + 5 = 18.
#[test]
fn merged_sessions_keep_the_earliest_pending_late_firing() {
    let steps = [
        P(0),
        E(0, 1),
        E(20, 2),
        W(100),
        P(10),
        E(0, 10),
        P(12),
        E(20, 20),
        P(13),
        E(10, 3),
        P(15),
        P(30),
    ];
    // The merged session is a new window: pane index 0, and in retracting mode the panes
    // of the swallowed sessions are retracted first.
    let want = |mode: &str| -> Vec<Row> {
        let on_time = vec![
            r(0, 10, 1.0, ON_TIME, 0, false, 0),
            r(20, 30, 2.0, ON_TIME, 0, false, 0),
        ];
        let merged = match mode {
            "discarding" => vec![r(0, 30, 33.0, LATE, 0, false, 15)],
            "accumulating" => vec![r(0, 30, 36.0, LATE, 0, false, 15)],
            _ => vec![
                r(0, 10, 1.0, LATE, 0, true, 15),
                r(20, 30, 2.0, LATE, 0, true, 15),
                r(0, 30, 36.0, LATE, 0, false, 15),
            ],
        };
        on_time.into_iter().chain(merged).collect()
    };
    for mode in MODES {
        let s = spec(
            r#"{ type = "session", gap = "10ms" }"#,
            &format!(
                "allowed_lateness = \"1d\"\naccumulation = \"{mode}\"\n\
                 trigger = {{ late = {{ after = \"5ms\" }} }}"
            ),
        );
        let got = run(&s, &steps);
        assert_eq!(got.rows, want(mode), "{mode}");
    }
}

/// An early pane every 3 elements: two sessions of one element each, then a bridging
/// element makes three in the merged session, which fires at once.
#[test]
fn merged_sessions_add_up_their_element_counts() {
    let steps = [P(0), E(0, 1), E(20, 2), P(1), E(10, 3), E(5, 4), W(100)];
    let want = |mode: &str| -> Vec<Row> {
        match mode {
            "discarding" => vec![
                r(0, 30, 6.0, EARLY, 0, false, 1),
                r(0, 30, 4.0, ON_TIME, 1, false, 1),
            ],
            "accumulating" => vec![
                r(0, 30, 6.0, EARLY, 0, false, 1),
                r(0, 30, 10.0, ON_TIME, 1, false, 1),
            ],
            _ => vec![
                r(0, 30, 6.0, EARLY, 0, false, 1),
                r(0, 30, 6.0, ON_TIME, 1, true, 1),
                r(0, 30, 10.0, ON_TIME, 1, false, 1),
            ],
        }
    };
    for mode in MODES {
        let s = spec(
            r#"{ type = "session", gap = "10ms" }"#,
            &format!(
                "allowed_lateness = \"1d\"\naccumulation = \"{mode}\"\n\
                 trigger = {{ early = {{ every = 3 }} }}"
            ),
        );
        let got = run(&s, &steps);
        assert_eq!(got.rows, want(mode), "{mode}");
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 12, item 2: the on-time pane when nothing new arrived
// ---------------------------------------------------------------------------------------------

/// An early pane per element, then the watermark: with `on_time = "always"` (the default,
/// Beam's FIRE_ALWAYS) an empty discarding pane comes on time (sum 0) and the late pane's
/// index moves up; with `"if_non_empty"` (Flink) it does not.
#[test]
fn on_time_pane_with_nothing_new() {
    let steps = [P(0), E(1, 1), W(100), E(2, 2)];
    let run_with = |on_time: &str| {
        let s = spec(
            TUMBLING,
            &format!("allowed_lateness = \"1d\"\n{on_time}trigger = {{ early = {{ every = 1 }} }}"),
        );
        run(&s, &steps).rows
    };
    let always = vec![
        r(0, 10, 1.0, EARLY, 0, false, 0),
        r(0, 10, 0.0, ON_TIME, 1, false, 0),
        r(0, 10, 2.0, LATE, 2, false, 0),
    ];
    assert_eq!(run_with(""), always);
    assert_eq!(run_with("on_time = \"always\"\n"), always);
    assert_eq!(
        run_with("on_time = \"if_non_empty\"\n"),
        vec![
            r(0, 10, 1.0, EARLY, 0, false, 0),
            r(0, 10, 2.0, LATE, 1, false, 0),
        ]
    );
    // Accumulating and retracting modes emit the unchanged value on time, or not.
    for (mode, on_time, want) in [
        ("accumulating", "always", 3),
        ("accumulating", "if_non_empty", 2),
        ("retracting", "always", 5),
        ("retracting", "if_non_empty", 3),
    ] {
        let s = spec(
            TUMBLING,
            &format!(
                "allowed_lateness = \"1d\"\naccumulation = \"{mode}\"\non_time = \"{on_time}\"\n\
                 trigger = {{ early = {{ every = 1 }} }}"
            ),
        );
        assert_eq!(run(&s, &steps).rows.len(), want, "{mode} {on_time}");
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 12, item 3: the trigger algebra, against hand-computed panes
// ---------------------------------------------------------------------------------------------

const TUMBLING: &str = r#"{ type = "tumbling", size = "10ms" }"#;

/// A tumbling 10 ms aggregation with `trigger`, allowed lateness and mode.
fn algebra(trigger: &str, lateness: &str, mode: &str) -> String {
    spec(
        TUMBLING,
        &format!(
            "allowed_lateness = \"{lateness}\"\naccumulation = \"{mode}\"\ntrigger = \"{trigger}\""
        ),
    )
}

/// `Repeatedly.forever(AfterPane.elementCountAtLeast(1))`, no watermark trigger: a pane per
/// element, all EARLY; the watermark fires nothing, and with no allowed lateness an element
/// after it goes to the late output.
#[test]
fn per_record_repeat_count() {
    let got = run(
        &algebra("repeat(count(1))", "0s", "accumulating"),
        &[P(0), E(1, 1), E(2, 2), E(12, 5), W(9), E(3, 7)],
    );
    assert_eq!(
        got.rows,
        vec![
            r(0, 10, 1.0, EARLY, 0, false, 0),
            r(0, 10, 3.0, EARLY, 1, false, 0),
            r(10, 20, 5.0, EARLY, 0, false, 0),
        ]
    );
    assert_eq!(got.late, 1);
}

/// Micro-batches aligned to 5 + 10k ms: the first element at 0 fires at 5, the one at 7 at
/// 15. After the watermark (which fires nothing) the next pane is the ON_TIME one.
#[test]
fn aligned_micro_batches_with_an_offset() {
    let got = run(
        &algebra("repeat(every(10ms, offset = 5ms))", "1d", "accumulating"),
        &[
            P(0),
            E(1, 1),
            P(3),
            E(2, 2),
            P(5),
            P(7),
            E(3, 4),
            P(15),
            W(100),
            P(20),
            E(4, 8),
            P(25),
            P(40),
        ],
    );
    assert_eq!(
        got.rows,
        vec![
            r(0, 10, 3.0, EARLY, 0, false, 5),
            r(0, 10, 7.0, EARLY, 1, false, 15),
            r(0, 10, 15.0, ON_TIME, 2, false, 25),
        ]
    );
}

/// `AfterFirst` fires once, when its first part fires, and closes the window: a later
/// element goes to the late output.
#[test]
fn after_first_fires_once_and_closes_the_window() {
    let got = run(
        &algebra("first(count(3), after(5ms))", "1d", "discarding"),
        &[P(0), E(1, 1), P(2), E(2, 2), P(5), P(6), E(3, 4), W(100)],
    );
    assert_eq!(got.rows, vec![r(0, 10, 3.0, EARLY, 0, false, 5)]);
    assert_eq!(got.late, 1);
}

/// Repeated, `AfterFirst` starts over after each firing: three elements fire at once, the
/// fourth 5 ms after it arrived.
#[test]
fn repeated_after_first() {
    let got = run(
        &algebra("repeat(first(count(3), after(5ms)))", "1d", "discarding"),
        &[P(0), E(1, 1), E(2, 2), E(3, 3), P(1), E(4, 4), P(6), W(100)],
    );
    assert_eq!(
        got.rows,
        vec![
            r(0, 10, 6.0, EARLY, 0, false, 0),
            r(0, 10, 4.0, EARLY, 1, false, 6),
        ]
    );
}

/// `AfterAll` waits for both parts: the delay is due at 5, the second element comes at 7.
#[test]
fn after_all_waits_for_every_part() {
    let got = run(
        &algebra("all(count(2), after(5ms))", "1d", "discarding"),
        &[P(0), E(1, 1), P(5), P(7), E(2, 2), P(8), E(3, 4), W(100)],
    );
    assert_eq!(got.rows, vec![r(0, 10, 3.0, EARLY, 0, false, 7)]);
    assert_eq!(got.late, 1);
}

/// `AfterEach.inOrder`: two elements, then a pane 5 ms after each first element; after the
/// watermark (no firing then) the next pane is ON_TIME.
#[test]
fn after_each_in_order() {
    let got = run(
        &algebra("each(count(2), repeat(after(5ms)))", "1d", "discarding"),
        &[
            P(0),
            E(1, 1),
            E(2, 2),
            P(1),
            E(3, 4),
            P(6),
            P(7),
            E(4, 8),
            W(100),
            P(12),
            P(20),
        ],
    );
    assert_eq!(
        got.rows,
        vec![
            r(0, 10, 3.0, EARLY, 0, false, 0),
            r(0, 10, 4.0, EARLY, 1, false, 6),
            r(0, 10, 8.0, ON_TIME, 2, false, 12),
        ]
    );
}

/// `orFinally`: a pane per element until the third, which fires a last time and closes.
#[test]
fn or_finally_ends_the_trigger() {
    let got = run(
        &algebra(
            "or_finally(repeat(count(1)), count(3))",
            "1d",
            "accumulating",
        ),
        &[P(0), E(1, 1), E(2, 2), E(3, 3), E(4, 4), W(100)],
    );
    assert_eq!(
        got.rows,
        vec![
            r(0, 10, 1.0, EARLY, 0, false, 0),
            r(0, 10, 3.0, EARLY, 1, false, 0),
            r(0, 10, 6.0, EARLY, 2, false, 0),
        ]
    );
    assert_eq!(got.late, 1);
}

/// Early panes every two elements, on time, and `late = never`: the late element is kept
/// and comes out when the window expires (at the end of input).
#[test]
fn watermark_with_early_count_and_late_never() {
    let got = run(
        &algebra(
            "watermark(early = count(2), late = never)",
            "1d",
            "accumulating",
        ),
        &[P(0), E(1, 1), E(2, 2), E(3, 3), W(100), E(4, 8)],
    );
    assert_eq!(
        got.rows,
        vec![
            r(0, 10, 3.0, EARLY, 0, false, 0),
            r(0, 10, 6.0, ON_TIME, 1, false, 0),
            r(0, 10, 14.0, LATE, 2, false, 0),
        ]
    );
    assert_eq!(got.late, 0);
}

/// `watermark()` alone fires once: late data go to the late output even within the allowed
/// lateness, as with Beam's `AfterWatermark.pastEndOfWindow()` (not repeated).
#[test]
fn watermark_alone_fires_once() {
    let got = run(
        &algebra("watermark()", "1d", "discarding"),
        &[P(0), E(1, 1), W(100), E(2, 2)],
    );
    assert_eq!(got.rows, vec![r(0, 10, 1.0, ON_TIME, 0, false, 0)]);
    assert_eq!(got.late, 1);
    // The default trigger fires again for every late element.
    let got = run(
        &spec(TUMBLING, "allowed_lateness = \"1d\""),
        &[P(0), E(1, 1), W(100), E(2, 2)],
    );
    assert_eq!(
        got.rows,
        vec![
            r(0, 10, 1.0, ON_TIME, 0, false, 0),
            r(0, 10, 2.0, LATE, 1, false, 0),
        ]
    );
}

/// A session whose trigger finished is closed: a later element in its range starts a new
/// session instead of merging with it, and its pending element comes out when it expires.
#[test]
fn closed_sessions_do_not_merge() {
    let s = spec(
        r#"{ type = "session", gap = "10ms" }"#,
        "accumulation = \"accumulating\"\ntrigger = \"count(2)\"",
    );
    let got = run(&s, &[P(0), E(0, 1), E(5, 2), E(6, 4), W(100)]);
    assert_eq!(
        got.rows,
        vec![
            r(0, 15, 3.0, EARLY, 0, false, 0),
            r(6, 16, 4.0, ON_TIME, 0, false, 0),
        ]
    );
}

/// The trigger state of merged sessions with a composite trigger: each session counted one
/// element of `all(count(2), after(5ms))`; the merge adds the counts and keeps the delay
/// armed at 0 + 5, so the merged session fires at 5.
#[test]
fn merged_sessions_merge_composite_trigger_state() {
    for mode in MODES {
        let s = spec(
            r#"{ type = "session", gap = "10ms" }"#,
            &format!(
                "allowed_lateness = \"1d\"\naccumulation = \"{mode}\"\n\
                 trigger = \"repeat(all(count(3), after(5ms)))\""
            ),
        );
        let got = run(
            &s,
            &[P(0), E(0, 1), P(2), E(20, 2), P(3), E(10, 3), P(5), W(100)],
        );
        let early = r(0, 30, 6.0, EARLY, 0, false, 5);
        assert_eq!(got.rows, vec![early], "{mode}");
    }
}
