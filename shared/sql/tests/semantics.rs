//! Aggregate FILTER, CASE inside aggregates, HAVING and CUMULATE compile to plans that give
//! Flink SQL's rows: each query runs on generated events through `replay` and is compared
//! with a direct computation of the query under SQL's rules (NULL for an aggregate of no
//! value, a condition on NULL is not true, `NOT` of it neither).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use eventide_connectors::replay::{replay, ReplayOptions};

#[derive(Debug, Clone)]
struct Ev {
    k: String,
    c: &'static str,
    /// `None`: the event has no `v`.
    v: Option<i64>,
    t: i64,
}

/// Events over 20 minutes, a little out of order (less than the 1 minute watermark bound),
/// from a fixed linear congruential sequence.
fn events(n: usize, seed: u64) -> Vec<Ev> {
    let mut x = seed;
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let mut evs: Vec<(i64, Ev)> = (0..n)
        .map(|i| {
            let t = 1_767_225_600_000 + (i as i64) * 1_200_000 / n as i64;
            let ev = Ev {
                k: format!("k{}", next(3)),
                c: ["x", "y", "z"][next(3) as usize],
                v: (next(8) != 0).then(|| next(10) as i64),
                t,
            };
            (t + next(50_000) as i64, ev)
        })
        .collect();
    evs.sort_by_key(|(arrival, _)| *arrival);
    evs.into_iter().map(|(_, e)| e).collect()
}

const DDL: &str = "CREATE TABLE events (k STRING, c STRING, v DOUBLE, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3), WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
  WITH ('connector' = 'filesystem', 'path' = 'events.jsonl', 'format' = 'json');\n";

/// Runs `sql` on the events; the rows of sink `table` by (key, start, end).
fn run(sql: &str, evs: &[Ev], table: &str, tag: &str) -> Rows {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("eventide-sql-sem-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("events.jsonl");
    let lines: Vec<String> = evs
        .iter()
        .map(|e| match e.v {
            Some(v) => format!(
                r#"{{"k":"{}","c":"{}","v":{v},"event_time":{}}}"#,
                e.k, e.c, e.t
            ),
            None => format!(r#"{{"k":"{}","c":"{}","event_time":{}}}"#, e.k, e.c, e.t),
        })
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let c = eventide_sql::compile(&format!("{DDL}{sql}")).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.join("out");
    replay(c.spec, &input, &out, &ReplayOptions::default()).unwrap();
    let rows = read_csv(&out.join(format!("{table}.csv")));
    let _ = std::fs::remove_dir_all(&dir);
    rows
}

type Rows = BTreeMap<(String, i64, i64), Vec<Option<f64>>>;

fn read_csv(path: &Path) -> Rows {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut rows = Rows::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        if cells[1] == "window_start" {
            continue;
        }
        let vals = cells[3..]
            .iter()
            .map(|c| (!c.is_empty()).then(|| c.parse::<f64>().unwrap()))
            .collect();
        rows.insert(
            (
                cells[0].to_string(),
                cells[1].parse().unwrap(),
                cells[2].parse().unwrap(),
            ),
            vals,
        );
    }
    rows
}

fn sum(vs: impl Iterator<Item = Option<i64>>) -> Option<f64> {
    vs.flatten().map(|v| v as f64).reduce(|a, b| a + b)
}

fn max(vs: impl Iterator<Item = Option<i64>>) -> Option<f64> {
    vs.flatten().max().map(|v| v as f64)
}

/// Groups the events by key and window (`windows(t)` the windows of an event time).
fn group(
    evs: &[Ev],
    windows: impl Fn(i64) -> Vec<(i64, i64)>,
) -> BTreeMap<(String, i64, i64), Vec<&Ev>> {
    let mut m: BTreeMap<(String, i64, i64), Vec<&Ev>> = BTreeMap::new();
    for e in evs {
        for (s, end) in windows(e.t) {
            m.entry((e.k.clone(), s, end)).or_default().push(e);
        }
    }
    m
}

#[test]
fn aggregate_filter_case_and_having_give_flinks_rows() {
    let sql = "CREATE TABLE q (k STRING, window_start BIGINT, window_end BIGINT, n BIGINT,
  nx BIGINT, s DOUBLE, my DOUBLE, big INT, cnt_y BIGINT)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO q
SELECT k, window_start, window_end,
  COUNT(*),
  COUNT(*) FILTER (WHERE c = 'x'),
  SUM(v) FILTER (WHERE c <> 'x' AND NOT v <= 2),
  MAX(CASE WHEN c = 'y' THEN v END),
  SUM(CASE WHEN v > 5 THEN 1 ELSE 0 END),
  COUNT(CASE WHEN c IN ('y', 'z') THEN 1 END)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '2' MINUTES))
GROUP BY k, window_start, window_end
HAVING COUNT(*) >= 3 AND NOT (MAX(CASE WHEN c = 'y' THEN v END) < 4);";
    for seed in [1, 2, 3] {
        let evs = events(400, seed);
        let got = run(sql, &evs, "q", &format!("having-{seed}"));
        let size = 120_000;
        let mut want = Rows::new();
        for (w, es) in group(&evs, |t| {
            let s = t.div_euclid(size) * size;
            vec![(s, s + size)]
        }) {
            let my = max(es.iter().filter(|e| e.c == "y").map(|e| e.v));
            let row = vec![
                Some(es.len() as f64),
                Some(es.iter().filter(|e| e.c == "x").count() as f64),
                sum(es
                    .iter()
                    .filter(|e| e.c != "x" && e.v.is_some_and(|v| v > 2))
                    .map(|e| e.v)),
                my,
                Some(es.iter().filter(|e| e.v.is_some_and(|v| v > 5)).count() as f64),
                Some(es.iter().filter(|e| e.c != "x").count() as f64),
            ];
            // HAVING: NOT (NULL < 4) is not true, so a window without a `y` value is out.
            if es.len() >= 3 && my.is_some_and(|m| m >= 4.0) {
                want.insert(w, row);
            }
        }
        assert!(!want.is_empty());
        assert_eq!(got, want, "seed {seed}");
    }
}

#[test]
fn where_with_not_filters_nulls_out_as_sql_does() {
    // `NOT (v > 5)` is not true for a row without `v`: the row is filtered out.
    let sql = "CREATE TABLE q (k STRING, window_start BIGINT, window_end BIGINT, n BIGINT)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO q SELECT k, window_start, window_end, COUNT(*)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '5' MINUTES))
WHERE NOT (v > 5 OR c NOT IN ('x', 'y'))
GROUP BY k, window_start, window_end;";
    let evs = events(300, 7);
    let got = run(sql, &evs, "q", "not");
    let size = 300_000;
    let kept: Vec<Ev> = evs
        .iter()
        .filter(|e| e.v.is_some_and(|v| v <= 5) && (e.c == "x" || e.c == "y"))
        .cloned()
        .collect();
    let want: Rows = group(&kept, |t| {
        let s = t.div_euclid(size) * size;
        vec![(s, s + size)]
    })
    .into_iter()
    .map(|(w, es)| (w, vec![Some(es.len() as f64)]))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn cumulate_gives_every_growing_window_of_the_period() {
    let sql =
        "CREATE TABLE q (k STRING, window_start BIGINT, window_end BIGINT, n BIGINT, s DOUBLE)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO q SELECT k, window_start, window_end, COUNT(*), SUM(v)
FROM TABLE(CUMULATE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTES, INTERVAL '5' MINUTES))
GROUP BY k, window_start, window_end;";
    let evs = events(300, 11);
    let got = run(sql, &evs, "q", "cumulate");
    let (step, size) = (60_000, 300_000);
    let want: Rows = group(&evs, |t| {
        let s = t.div_euclid(size) * size;
        (1..=size / step)
            .map(|j| (s, s + j * step))
            .filter(|(_, e)| *e > t)
            .collect()
    })
    .into_iter()
    .map(|(w, es)| (w, vec![Some(es.len() as f64), sum(es.iter().map(|e| e.v))]))
    .collect();
    assert_eq!(got, want);
}
