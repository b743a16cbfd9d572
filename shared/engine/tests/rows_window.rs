//! Rows windows (Flink SQL's `OVER … ROWS BETWEEN n PRECEDING AND CURRENT ROW`) against a
//! direct model written from Flink's `RowTimeRowsBoundedPrecedingFunction`: random keys,
//! event times out of order and at or before the epoch, late rows, nulls, n from 0 to 5.
//! The streaming pipeline and the key-by-key run both give the model's rows, and every
//! late row goes to the late output.

use std::collections::{BTreeMap, HashMap};

use eventide_engine::bounded::{BoundedInput, Chunk, KeyOutput, KeyRunner};
use eventide_engine::codec::Codec;
use eventide_engine::pane::{Emit, Pane};
use eventide_engine::record::Line;
use eventide_engine::route::Routes;
use eventide_engine::{Output, Pipeline, PipelineSpec};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
struct Ev {
    k: u8,
    t: i64,
    v: Option<i64>,
}

impl Ev {
    fn line(&self) -> String {
        match self.v {
            Some(v) => format!(r#"{{"k":"k{}","t":{},"v":{v}}}"#, self.k, self.t),
            None => format!(r#"{{"k":"k{}","t":{}}}"#, self.k, self.t),
        }
    }
}

fn spec(preceding: u64, bound: i64) -> PipelineSpec {
    PipelineSpec::from_toml(&format!(
        r#"
[input]
event_time = {{ field = "t" }}
fields = {{ k = "string", v = "number" }}
[watermark]
strategy = "bounded"
max_out_of_orderness = "{bound}ms"
max_future_skew = "off"
[[aggregation]]
name = "over"
group_by = ["k"]
window = {{ type = "rows", preceding = {preceding} }}
aggregates = [
  {{ name = "n", fn = "count" }},
  {{ name = "nv", fn = "count", field = "v" }},
  {{ name = "s", fn = "sum", field = "v" }},
  {{ name = "lo", fn = "min", field = "v" }},
  {{ name = "hi", fn = "max", field = "v" }},
  {{ name = "a", fn = "avg", field = "v" }},
]
columns = ["k", "t", "v", "n", "nv", "s", "lo", "hi", "a"]
"#
    ))
    .unwrap()
}

/// Output rows by (key, time, ordinal): the aggregates, then the row's own `v`.
type Rows = BTreeMap<RowId, Vec<Option<f64>>>;

/// A row's key, time and ordinal among the key's rows of that time.
type RowId = (String, i64, u32);

/// Flink's operator, directly. The watermark is the largest time so far minus `bound`,
/// advanced after each record; each key's last emitted time starts at 0.
fn model(evs: &[Ev], preceding: usize, bound: i64) -> (Rows, Vec<String>) {
    let mut pending: BTreeMap<String, BTreeMap<i64, Vec<Option<i64>>>> = BTreeMap::new();
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut emitted: HashMap<String, Vec<Option<i64>>> = HashMap::new();
    let mut rows = Rows::new();
    let mut late = Vec::new();
    let mut fire = |wm: i64,
                    pending: &mut BTreeMap<String, BTreeMap<i64, Vec<Option<i64>>>>,
                    last: &mut HashMap<String, i64>| {
        for (k, times) in pending.iter_mut() {
            let ready: Vec<i64> = times.range(..=wm).map(|(t, _)| *t).collect();
            for t in ready {
                let batch = times.remove(&t).unwrap_or_default();
                for (ordinal, v) in batch.into_iter().enumerate() {
                    let done = emitted.entry(k.clone()).or_default();
                    done.push(v);
                    let frame = &done[done.len().saturating_sub(preceding + 1)..];
                    let vals: Vec<i64> = frame.iter().flatten().copied().collect();
                    let sum = (!vals.is_empty()).then(|| vals.iter().sum::<i64>() as f64);
                    rows.insert(
                        (k.clone(), t, ordinal as u32),
                        vec![
                            Some(frame.len() as f64),
                            Some(vals.len() as f64),
                            sum,
                            vals.iter().min().map(|x| *x as f64),
                            vals.iter().max().map(|x| *x as f64),
                            sum.map(|s| s / vals.len() as f64),
                            v.map(|x| x as f64),
                        ],
                    );
                }
                last.insert(k.clone(), t);
            }
        }
    };
    let mut wm = i64::MIN;
    for e in evs {
        let k = format!("k{}", e.k);
        if e.t <= last.get(&k).copied().unwrap_or(0) {
            late.push(e.line());
        } else {
            pending
                .entry(k)
                .or_default()
                .entry(e.t)
                .or_default()
                .push(e.v);
        }
        if e.t - bound > wm {
            wm = e.t - bound;
            fire(wm, &mut pending, &mut last);
        }
    }
    fire(i64::MAX, &mut pending, &mut last);
    (rows, late)
}

#[derive(Default)]
struct Recorder {
    /// Emitted rows in order, with their key.
    rows: Vec<(RowId, Vec<Option<f64>>)>,
    late: Vec<String>,
    late_tags: Vec<u64>,
}

impl Emit for Recorder {
    fn pane(&mut self, p: &Pane<'_>) {
        assert_eq!(p.window.end, p.window.start + 1);
        self.rows.push((
            (p.key.to_string(), p.window.start, p.index),
            p.values.to_vec(),
        ));
    }
}

impl Output for Recorder {
    fn late(&mut self, _: usize, raw: &[u8]) {
        self.late.push(String::from_utf8_lossy(raw).into_owned());
    }
}

impl KeyOutput for Recorder {
    fn late(&mut self, tag: u64) {
        self.late_tags.push(tag);
    }
}

/// The rows as a map, checking that each key's rows came out in (time, ordinal) order.
fn by_key(rows: &[(RowId, Vec<Option<f64>>)]) -> Rows {
    let mut last: HashMap<&str, (i64, u32)> = HashMap::new();
    for ((k, t, i), _) in rows {
        if let Some(prev) = last.insert(k, (*t, *i)) {
            assert!(prev < (*t, *i), "key {k}: {prev:?} then {:?}", (t, i));
        }
    }
    rows.iter().cloned().collect()
}

fn streaming(spec: PipelineSpec, evs: &[Ev]) -> Recorder {
    let mut p = Pipeline::new(spec);
    let mut out = Recorder::default();
    for e in evs {
        p.process_line(e.line().as_bytes(), "", &mut out).unwrap();
    }
    p.finish(&mut out);
    out
}

fn key_by_key(spec: &PipelineSpec, evs: &[Ev]) -> Recorder {
    let routes = Routes::new(spec);
    let codec = Codec::new(spec);
    let mut chunk = Chunk::new(&routes);
    let lines: Vec<String> = evs.iter().map(Ev::line).collect();
    for (i, l) in lines.iter().enumerate() {
        match codec.decode(l.as_bytes()).unwrap() {
            Line::Event(rec) => chunk.push_event(&routes, &rec, i as u64),
            other => chunk.push_control(&other),
        }
    }
    let input = BoundedInput::new(spec, routes, vec![chunk], 0);
    let mut runner = KeyRunner::new(spec, 0);
    let mut out = Recorder::default();
    for rank in 0..input.keys(0) {
        runner.run_key(&input, rank, &mut out);
    }
    out.late = out
        .late_tags
        .iter()
        .map(|&i| lines[i as usize].clone())
        .collect();
    out
}

fn events() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(
        (0u8..3, -5i64..60, prop::option::weighted(0.8, -9i64..10)).prop_map(|(k, t, v)| Ev {
            k,
            t,
            v,
        }),
        0..80,
    )
}

proptest! {
    #![proptest_config(eventide_testkit::fuzz_config(256))]

    #[test]
    fn rows_windows_give_flinks_over_rows(
        evs in events(),
        preceding in 0u64..5,
        bound in 0i64..20,
    ) {
        let (want, mut want_late) = model(&evs, preceding as usize, bound);
        want_late.sort();
        let s = spec(preceding, bound);
        prop_assert!(eventide_engine::bounded::supports(&s));
        for (how, mut out) in [("streaming", streaming(s.clone(), &evs)), ("key by key", key_by_key(&s, &evs))] {
            let got = by_key(&out.rows);
            prop_assert_eq!(got.len(), out.rows.len(), "{}: one row per (key, time, ordinal)", how);
            prop_assert_eq!(&got, &want, "{}", how);
            out.late.sort();
            prop_assert_eq!(&out.late, &want_late, "{}: late rows", how);
        }
    }
}

#[test]
fn rows_of_one_time_have_distinct_pane_ids() {
    let evs = [
        Ev {
            k: 0,
            t: 5,
            v: Some(1),
        },
        Ev {
            k: 0,
            t: 5,
            v: Some(2),
        },
        Ev {
            k: 0,
            t: 5,
            v: None,
        },
    ];
    // Within the watermark bound, so that the three wait together.
    let s = spec(1, 10);
    let mut ids = Vec::new();
    let mut p = Pipeline::new(s);
    struct Ids<'a>(&'a mut Vec<String>);
    impl Emit for Ids<'_> {
        fn pane(&mut self, p: &Pane<'_>) {
            self.0.push(p.id("over"));
        }
    }
    impl Output for Ids<'_> {
        fn late(&mut self, _: usize, _: &[u8]) {}
    }
    let mut out = Ids(&mut ids);
    for e in &evs {
        p.process_line(e.line().as_bytes(), "", &mut out).unwrap();
    }
    p.finish(&mut out);
    assert_eq!(ids.len(), 3);
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{ids:?}");
}

#[test]
fn rows_window_specs_are_checked() {
    let base = |window: &str, extra: &str| {
        PipelineSpec::from_toml(&format!(
            "[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ k = \"string\", c = \"string\", v = \"number\" }}\n\
             [[aggregation]]\nname = \"o\"\ngroup_by = [\"k\"]\nwindow = {window}\n\
             aggregates = [{{ name = \"s\", fn = \"sum\", field = \"v\" }}]\n{extra}"
        ))
    };
    let rows = r#"{ type = "rows", preceding = 3 }"#;
    let ok = base(rows, "").unwrap();
    let names: Vec<&str> = ok.aggregations[0]
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["k", "t", "s"], "the default row");
    for (window, extra, needle) in [
        (
            rows,
            "columns = [\"k\", \"c\"]",
            "not a number and not in group_by",
        ),
        (rows, "columns = [\"nope\"]", "no group-by field"),
        (
            rows,
            "columns = [\"s\", { name = \"s\", field = \"v\" }]",
            "duplicate output column",
        ),
        (rows, "trigger = \"repeat(count(1))\"", "triggers, lateness"),
        (
            rows,
            "allowed_lateness = \"1m\"",
            "aggregation[0] (o).allowed_lateness",
        ),
        (r#"{ type = "rows", preceding = -1 }"#, "", "number of rows"),
        (r#"{ type = "rows" }"#, "", "preceding"),
        (
            r#"{ type = "count", size = 3, preceding = 2 }"#,
            "",
            "not used by a count window",
        ),
        (
            r#"{ type = "tumbling", size = "1m" }"#,
            "columns = [\"k\"]",
            "only a rows window",
        ),
        (
            rows,
            "[limits]\nmax_pending_rows = 0",
            "limits.max_pending_rows",
        ),
    ] {
        let e = base(window, extra).unwrap_err().to_string();
        assert!(e.contains(needle), "{window} {extra}: {e}");
    }
}
