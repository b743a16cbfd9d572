//! `OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN n PRECEDING AND CURRENT ROW)` gives
//! Flink's rows: the reference workload (`../shared/reference/gen.py`, with late events)
//! replayed through the compiled pipeline, against a direct computation written from
//! Flink's `RowTimeRowsBoundedPrecedingFunction`: per key, rows wait until the watermark
//! reaches their time, come out in (time, arrival) order with the aggregates over the
//! last n + 1 rows, and a row at or before its key's last emitted time is late.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use eventide_connectors::replay::{replay, Execution, ReplayOptions};
use eventide_testkit::reference;

/// One generated event, with its input line.
struct Ev {
    key: String,
    counter: String,
    cents: i64,
    t: i64,
    line: String,
}

fn generate(dir: &Path, n: u64, keys: u64, seed: u64) -> (PathBuf, Vec<Ev>) {
    let input = dir.join("events.jsonl");
    reference::generate_with_late(n, keys, seed, 0.05, &input);
    let text = std::fs::read_to_string(&input).unwrap();
    let evs = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            // The value is printed with two decimals: exact integer cents.
            let value = v["value"].as_f64().unwrap();
            Ev {
                key: v["subscriber_id"].as_str().unwrap().to_string(),
                counter: v["counter"].as_str().unwrap().to_string(),
                cents: (value * 100.0).round() as i64,
                t: v["event_time"].as_i64().unwrap(),
                line: l.to_string(),
            }
        })
        .collect();
    (input, evs)
}

/// Output rows by (key, time, ordinal among the key's rows of that time).
type Rows = BTreeMap<(String, i64, usize), Vec<Option<f64>>>;

/// Per key: the rows waiting, the last emitted time and the rows emitted so far.
#[derive(Default)]
struct Keys<'e> {
    pending: BTreeMap<&'e str, BTreeMap<i64, Vec<&'e Ev>>>,
    last: HashMap<&'e str, i64>,
    emitted: HashMap<&'e str, Vec<&'e Ev>>,
}

impl<'e> Keys<'e> {
    /// Emits the rows the watermark `wm` reached into `rows`.
    fn fire(
        &mut self,
        wm: i64,
        preceding: usize,
        aggs: &impl Fn(&[&Ev]) -> Vec<Option<f64>>,
        rows: &mut Rows,
    ) {
        for (k, times) in self.pending.iter_mut() {
            while let Some(e) = times.first_entry() {
                if *e.key() > wm {
                    break;
                }
                let (t, batch) = e.remove_entry();
                for (ordinal, ev) in batch.into_iter().enumerate() {
                    let done = self.emitted.entry(k).or_default();
                    done.push(ev);
                    let frame = &done[done.len().saturating_sub(preceding + 1)..];
                    rows.insert((k.to_string(), t, ordinal), aggs(frame));
                }
                self.last.insert(k, t);
            }
        }
    }
}

/// Flink's operator, directly: the watermark is the largest event time so far minus
/// `bound`, advanced after each record; `aggs` computes a row's values from its frame.
fn model(
    evs: &[Ev],
    bound: i64,
    preceding: usize,
    pass: impl Fn(&Ev) -> bool,
    aggs: impl Fn(&[&Ev]) -> Vec<Option<f64>>,
) -> (Rows, Vec<&str>) {
    let mut keys = Keys::default();
    let mut rows = Rows::new();
    let mut late = Vec::new();
    let mut wm = i64::MIN;
    for ev in evs {
        if pass(ev) {
            // Flink's lastTriggeringTs starts at 0.
            if ev.t <= keys.last.get(ev.key.as_str()).copied().unwrap_or(0) {
                late.push(ev.line.as_str());
            } else {
                keys.pending
                    .entry(&ev.key)
                    .or_default()
                    .entry(ev.t)
                    .or_default()
                    .push(ev);
            }
        }
        if ev.t - bound > wm {
            wm = ev.t - bound;
            keys.fire(wm, preceding, &aggs, &mut rows);
        }
    }
    keys.fire(i64::MAX, preceding, &aggs, &mut rows);
    (rows, late)
}

/// A sink's CSV rows: `key_col` and `time_col` locate the key and the time; the other
/// columns are values in order.
fn read_rows(path: &Path, key_col: usize, time_col: usize) -> Rows {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows = Rows::new();
    let mut seen: HashMap<(String, i64), usize> = HashMap::new();
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let (key, t) = (cells[key_col].to_string(), cells[time_col].parse().unwrap());
        let ordinal = seen.entry((key.clone(), t)).or_default();
        let values = cells
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != key_col && *i != time_col)
            .map(|(_, c)| (!c.is_empty()).then(|| c.parse::<f64>().unwrap()))
            .collect();
        rows.insert((key, t, *ordinal), values);
        *ordinal += 1;
    }
    rows
}

const SQL: &str = "
CREATE TABLE events (subscriber_id STRING, counter STRING, `value` DOUBLE, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3), WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE)
  WITH ('connector' = 'filesystem', 'path' = 'events.jsonl', 'format' = 'json');
CREATE TABLE rolling (subscriber_id STRING, ts BIGINT, v DOUBLE, n BIGINT, total DOUBLE,
  lo DOUBLE, hi DOUBLE, mean DOUBLE)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
CREATE TABLE xs (ts BIGINT, subscriber_id STRING, total DOUBLE)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
EXECUTE STATEMENT SET
BEGIN
  INSERT INTO rolling
  SELECT subscriber_id, ts, `value`, COUNT(*) OVER w, SUM(`value`) OVER w, MIN(`value`) OVER w,
         MAX(`value`) OVER w, AVG(`value`) OVER w
  FROM events
  WINDOW w AS (PARTITION BY subscriber_id ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW);
  INSERT INTO xs
  SELECT ts, subscriber_id,
         SUM(`value`) OVER (PARTITION BY subscriber_id ORDER BY ts ROWS BETWEEN CURRENT ROW AND CURRENT ROW)
  FROM events WHERE counter = 'x';
END;
";

#[test]
fn over_rows_are_flinks_on_the_reference_workload_with_late_events() {
    let dir = std::env::temp_dir().join(format!("eventide-sql-over-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (input, evs) = generate(&dir, 6_000, 25, 7);
    let c = eventide_sql::compile(SQL).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        c.toml
            .contains(r#"window = { type = "rows", preceding = 3 }"#),
        "{}",
        c.toml
    );
    let out = dir.join("out");
    let report = replay(c.spec.clone(), &input, &out, &ReplayOptions::default()).unwrap();
    // Every way of running a replay writes the same bytes.
    for execution in [Execution::Streaming, Execution::Lanes, Execution::ByKey] {
        let other = dir.join(format!("{execution:?}"));
        let opts = ReplayOptions {
            execution,
            ..ReplayOptions::default()
        };
        replay(c.spec.clone(), &input, &other, &opts).unwrap();
        for f in [
            "rolling.csv",
            "xs.csv",
            "rolling.late.jsonl",
            "xs.late.jsonl",
        ] {
            let (x, y) = (std::fs::read(out.join(f)), std::fs::read(other.join(f)));
            assert!(x.ok() == y.ok(), "{execution:?}: {f} differs");
        }
    }
    let bound = 300_000;

    let (want, late) = model(
        &evs,
        bound,
        3,
        |_| true,
        |frame| {
            let cents: Vec<i64> = frame.iter().map(|e| e.cents).collect();
            let sum = cents.iter().sum::<i64>() as f64 / 100.0;
            let v = frame.last().map(|e| e.cents as f64 / 100.0);
            vec![
                v,
                Some(frame.len() as f64),
                Some(sum),
                cents.iter().min().map(|c| *c as f64 / 100.0),
                cents.iter().max().map(|c| *c as f64 / 100.0),
                Some(sum / frame.len() as f64),
            ]
        },
    );
    let got = read_rows(&out.join("rolling.csv"), 0, 1);
    assert!(
        late.len() > 20,
        "the workload has late rows: {}",
        late.len()
    );
    assert_eq!(got.len(), want.len());
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "row {k:?}");
    }
    let late_file = std::fs::read_to_string(out.join("rolling.late.jsonl")).unwrap_or_default();
    let mut got_late: Vec<&str> = late_file.lines().collect();
    let mut want_late = late.clone();
    got_late.sort_unstable();
    want_late.sort_unstable();
    assert_eq!(got_late, want_late, "the late rows go to the late output");
    assert_eq!(
        got.len() + late.len(),
        evs.len(),
        "each row is emitted or late"
    );

    let (want, late) = model(
        &evs,
        bound,
        0,
        |e| e.counter == "x",
        |frame| vec![frame.last().map(|e| e.cents as f64 / 100.0)],
    );
    let got = read_rows(&out.join("xs.csv"), 1, 0);
    assert_eq!(got, want);
    let xs_late = report
        .aggregations
        .iter()
        .find(|(n, _, _)| n == "xs")
        .map(|(_, _, l)| *l);
    assert_eq!(xs_late, Some(late.len() as u64));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_rows_sink_writes_the_select_list_in_order() {
    let c = eventide_sql::compile(SQL).unwrap();
    let spec = c.spec.aggregation("xs").unwrap();
    let names: Vec<&str> = spec.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["ts", "subscriber_id", "total"]);
    assert!(
        c.toml
            .contains(r#"columns = [{ name = "ts", field = "event_time" }, { name = "subscriber_id", field = "subscriber_id" }, "total"]"#),
        "{}",
        c.toml
    );
}

#[test]
fn shorthand_frames_filters_and_decimals_compile() {
    let sql = SQL.replace(
        "SUM(`value`) OVER (PARTITION BY subscriber_id ORDER BY ts ROWS BETWEEN CURRENT ROW AND CURRENT ROW)",
        "CAST(SUM(`value`) FILTER (WHERE `value` > 10) OVER (PARTITION BY subscriber_id ORDER BY ts ROWS 4 PRECEDING) AS DECIMAL(10, 2))",
    );
    let c = eventide_sql::compile(&sql).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        c.toml
            .contains(r#"window = { type = "rows", preceding = 4 }"#),
        "{}",
        c.toml
    );
    assert!(
        c.toml.contains(
            r#"{ name = "total", fn = "sum", field = "value", decimals = 2, filter = "value > 10" }"#
        ),
        "{}",
        c.toml
    );
}

#[test]
fn a_json_sink_writes_the_columns_by_name_with_the_row_id() {
    let dir = std::env::temp_dir().join(format!("eventide-sql-over-json-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("events.jsonl");
    // Two rows of one key and time, and a row without a value.
    std::fs::write(
        &input,
        "{\"subscriber_id\":\"a\",\"counter\":\"x\",\"value\":1.5,\"event_time\":1000}\n\
         {\"subscriber_id\":\"a\",\"counter\":\"x\",\"value\":2,\"event_time\":1000}\n\
         {\"subscriber_id\":\"a\",\"counter\":\"x\",\"event_time\":2000}\n",
    )
    .unwrap();
    let sql = SQL.replace(
        "CREATE TABLE xs (ts BIGINT, subscriber_id STRING, total DOUBLE)\n  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');",
        "CREATE TABLE xs (ts BIGINT, subscriber_id STRING, total DOUBLE)\n  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'json');",
    );
    let c = eventide_sql::compile(&sql).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.join("out");
    replay(c.spec, &input, &out, &ReplayOptions::default()).unwrap();
    let text = std::fs::read_to_string(out.join("xs.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    for (r, (ts, total)) in rows
        .iter()
        .zip([(1000, Some(1.5)), (1000, Some(2.0)), (2000, None)])
    {
        assert_eq!(r["aggregation"], "xs");
        assert_eq!(r["subscriber_id"], "a");
        assert_eq!(r["ts"], ts);
        assert_eq!(r["total"].as_f64(), total, "{r}");
        assert_eq!(r.as_object().map(|o| o.len()), Some(5), "{r}");
    }
    assert_ne!(
        rows[0]["pane_id"], rows[1]["pane_id"],
        "rows of one time are distinct"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A computed argument is computed in the frame too: `SUM(v * 2) OVER w` is twice
/// `SUM(v) OVER w` on every row, and `MAX(v + 1) OVER w` one more than `MAX(v) OVER w`.
#[test]
fn computed_arguments_are_computed_per_row_of_the_frame() {
    let dir = eventide_testkit::Scratch::new("sql-over-expr");
    let (input, _) = generate(dir.path(), 2_000, 10, 11);
    let sql = SQL
        .replace(
            "SUM(`value`) OVER (PARTITION BY subscriber_id ORDER BY ts ROWS BETWEEN CURRENT ROW AND CURRENT ROW)",
            "SUM(`value` * 2) OVER (PARTITION BY subscriber_id ORDER BY ts ROWS BETWEEN CURRENT ROW AND CURRENT ROW)",
        );
    let c = eventide_sql::compile(&sql).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.toml.contains(r#"expr = "value * 2""#), "{}", c.toml);
    let doubled = dir.path().join("doubled");
    replay(c.spec, &input, &doubled, &ReplayOptions::default()).unwrap();
    let plain = dir.path().join("plain");
    let c = eventide_sql::compile(SQL).unwrap();
    replay(c.spec, &input, &plain, &ReplayOptions::default()).unwrap();
    let (a, b) = (
        read_rows(&doubled.join("xs.csv"), 1, 0),
        read_rows(&plain.join("xs.csv"), 1, 0),
    );
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len());
    for (k, v) in &b {
        let twice: Vec<Option<f64>> = v.iter().map(|x| x.map(|x| x * 2.0)).collect();
        assert_eq!(a.get(k), Some(&twice), "row {k:?}");
    }
}
