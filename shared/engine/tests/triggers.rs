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

#[derive(Default)]
struct Collect {
    rows: Vec<Row>,
    late: usize,
    now: i64,
}

impl Emit for Collect {
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

impl Output for Collect {
    fn late(&mut self, _aggregation: usize, _raw: &[u8]) {
        self.late += 1;
    }
}

/// The spec of one aggregation `s` (sum of `v` per `k`) with `window` and `extra` lines.
fn spec(window: &str, extra: &str) -> String {
    format!(
        "[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ k = \"string\", v = \"number\" }}\n\
         [watermark]\nstrategy = \"explicit\"\n\
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
fn run(spec: &str, steps: &[Step]) -> Collect {
    let spec = PipelineSpec::from_toml(spec).unwrap_or_else(|e| panic!("{e}\n{spec}"));
    let mut p = Pipeline::new(spec);
    let mut out = Collect::default();
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
