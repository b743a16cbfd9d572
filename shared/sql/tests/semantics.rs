//! Aggregate FILTER, CASE inside aggregates, HAVING and CUMULATE compile to plans that give
//! Flink SQL's rows: each query runs on generated events through `replay` and is compared
//! with a direct computation of the query under SQL's rules (NULL for an aggregate of no
//! value, a condition on NULL is not true, `NOT` of it neither).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use eventide_connectors::replay::{replay, ReplayOptions, ReplayReport};

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
    run_ddl(DDL, sql, evs, table, tag).0
}

/// Runs `ddl` and `sql` on the events: the rows of sink `table` by (key, start, end), and
/// the dead letters.
fn run_ddl(ddl: &str, sql: &str, evs: &[Ev], table: &str, tag: &str) -> (Rows, String) {
    replay_sql(ddl, sql, evs, tag, |out, _, _| {
        let rows = final_rows(&out.join(format!("{table}.csv")), None);
        let dead = std::fs::read_to_string(out.join("dead_letters.jsonl")).unwrap_or_default();
        (rows, dead)
    })
}

/// Writes the events as JSON lines in a scratch directory of its own (`tag`), compiles
/// `ddl` and `sql` and replays them, then reads what it wrote with `read` (given the output
/// directory, the compiled TOML and the replay's report) before removing the directory.
fn replay_sql<T>(
    ddl: &str,
    sql: &str,
    evs: &[Ev],
    tag: &str,
    read: impl FnOnce(&Path, &str, &ReplayReport) -> T,
) -> T {
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
    let c = eventide_sql::compile(&format!("{ddl}{sql}")).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.join("out");
    let report = replay(c.spec, &input, &out, &ReplayOptions::default()).unwrap();
    let got = read(&out, &c.toml, &report);
    let _ = std::fs::remove_dir_all(&dir);
    got
}

type Rows = BTreeMap<(String, i64, i64), Vec<Option<f64>>>;

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

/// Tumbling windows of `size` ms.
fn tumbling(size: i64) -> impl Fn(i64) -> Vec<(i64, i64)> {
    move |t| {
        let s = t.div_euclid(size) * size;
        vec![(s, s + size)]
    }
}

#[test]
fn arithmetic_case_and_cast_inside_aggregates_give_flinks_rows() {
    let sql = "CREATE TABLE q (k STRING, window_start BIGINT, window_end BIGINT, lin DOUBLE,
  cx DOUBLE, avg_big BIGINT, yz DOUBLE, quarters DECIMAL(38, 1), n BIGINT, ratio DOUBLE)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO q
SELECT k, window_start, window_end,
  SUM(v * 2 + 1),
  SUM(CASE WHEN c = 'x' THEN v ELSE 0 END),
  AVG(CAST(v AS BIGINT)),
  MAX(CASE WHEN c = 'y' THEN v * 10 WHEN c = 'z' THEN -v END),
  SUM(CAST(v / 4 AS DECIMAL(10, 1))),
  COUNT(v - 1),
  MIN(v / (v - 3))
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '2' MINUTES))
GROUP BY k, window_start, window_end;";
    for seed in [4, 5] {
        let evs = events(400, seed);
        let (got, dead) = run_ddl(DDL, sql, &evs, "q", &format!("arith-{seed}"));
        // DOUBLE division by zero is IEEE (v / 0.0 = +inf, 0 / 0 = NaN), not an error.
        assert!(dead.is_empty(), "{dead}");
        let mut want = Rows::new();
        for (w, es) in group(&evs, tumbling(120_000)) {
            let vals = || es.iter().filter_map(|e| e.v);
            let avg_big = {
                let n = vals().count() as i64;
                (n > 0).then(|| (vals().sum::<i64>() / n) as f64)
            };
            let yz = es
                .iter()
                .filter_map(|e| match (e.c, e.v) {
                    ("y", Some(v)) => Some(v as f64 * 10.0),
                    ("z", Some(v)) => Some(-(v as f64)),
                    _ => None,
                })
                .reduce(f64::max);
            // CAST(v / 4 AS DECIMAL(10, 1)): v/4 is exact in hundredths (v * 25), rounded
            // half up to tenths.
            let quarters = vals()
                .map(|v| (v * 25 + 5) / 10)
                .reduce(|a, b| a + b)
                .map(|tenths| tenths as f64 / 10.0);
            let ratio = vals().map(|v| v as f64 / (v as f64 - 3.0)).reduce(f64::min);
            want.insert(
                w,
                vec![
                    sum(es.iter().map(|e| e.v.map(|v| 2 * v + 1))),
                    sum(es.iter().map(|e| match e.c {
                        "x" => e.v,
                        _ => Some(0),
                    })),
                    avg_big,
                    yz,
                    quarters,
                    Some(vals().count() as f64),
                    ratio,
                ],
            );
        }
        assert_eq!(got.len(), want.len(), "seed {seed}");
        for (w, row) in &want {
            let g = &got[w];
            for (i, (a, b)) in g.iter().zip(row).enumerate() {
                let same = match (a, b) {
                    (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
                    (None, None) => true,
                    _ => false,
                };
                assert!(
                    same,
                    "seed {seed} {w:?} column {i}: got {g:?}, want {row:?}"
                );
            }
        }
    }
}

const INT_DDL: &str = "CREATE TABLE events (k STRING, c STRING, v INT, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3), WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
  WITH ('connector' = 'filesystem', 'path' = 'events.jsonl', 'format' = 'json');\n";

#[test]
fn integer_arithmetic_truncates_and_division_by_zero_is_a_dead_letter() {
    let sql = "CREATE TABLE q (k STRING, window_start BIGINT, window_end BIGINT, n BIGINT,
  s INT, a INT, halves INT, mods INT, inv INT, d DOUBLE)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO q
SELECT k, window_start, window_end,
  COUNT(*), SUM(v), AVG(v), SUM(v / 2), SUM((v - 5) % 3), SUM(100 / (v - 3)),
  AVG(CAST(v AS DOUBLE))
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '2' MINUTES))
GROUP BY k, window_start, window_end;";
    let evs = events(400, 9);
    let (got, dead) = run_ddl(INT_DDL, sql, &evs, "q", "int");
    // Every record with v = 3 divides by zero: it goes to the dead letters, with the reason
    // naming the expression, and no aggregate sees it.
    let zeros = evs.iter().filter(|e| e.v == Some(3)).count();
    assert!(zeros > 0);
    assert_eq!(dead.lines().count(), zeros, "{dead}");
    assert!(
        dead.lines()
            .all(|l| l.contains("integer division by zero")
                && l.contains("100 / (cast(v as int) - 3)")),
        "{dead}"
    );
    let kept: Vec<Ev> = evs.iter().filter(|e| e.v != Some(3)).cloned().collect();
    let mut want = Rows::new();
    for (w, es) in group(&kept, tumbling(120_000)) {
        let vals: Vec<i64> = es.iter().filter_map(|e| e.v).collect();
        let n = vals.len() as i64;
        let agg = |f: &dyn Fn(i64) -> i64| {
            (n > 0).then(|| vals.iter().map(|&v| f(v)).sum::<i64>() as f64)
        };
        want.insert(
            w,
            vec![
                Some(es.len() as f64),
                agg(&|v| v),
                (n > 0).then(|| (vals.iter().sum::<i64>() / n) as f64),
                agg(&|v| v / 2),
                agg(&|v| (v - 5) % 3),
                agg(&|v| 100 / (v - 3)),
                (n > 0).then(|| vals.iter().sum::<i64>() as f64 / n as f64),
            ],
        );
    }
    assert_eq!(got, want);
}

/// Reads a sink's CSV (a header, then key, window_start, window_end and the values): the
/// row each window ends with, by (key, start, end). `values` is the number of value
/// columns, `None` for all the columns after window_end; with pane columns (`timing`,
/// `pane_index`, `retraction`), a window's row is its last pane that is not a retraction.
fn final_rows(path: &Path, values: Option<usize>) -> Rows {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let retraction = col("retraction");
    let first_value = col("window_end").map_or(3, |i| i + 1);
    let values = values.unwrap_or(header.len().saturating_sub(first_value));
    let mut rows = Rows::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        if retraction.is_some_and(|r| cells[r] == "true") {
            continue;
        }
        let vals = cells[first_value..first_value + values]
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

#[test]
fn first_and_last_value_follow_arrival_order_late_records_included() {
    // Events up to 50 s out of order, and every 7th delayed by 3 more minutes: later than
    // the 1 minute watermark bound, within the 10 minute allowed lateness, so they fire
    // late panes, and as the latest arrivals they are the last values.
    let mut evs = events(300, 21);
    let mut late = Vec::new();
    let mut i = 0;
    evs.retain(|e| {
        i += 1;
        if i % 7 == 0 {
            late.push(e.clone());
            false
        } else {
            true
        }
    });
    // Re-insert each late event 3 minutes of event time after its own place.
    let mut arrivals: Vec<Ev> = Vec::new();
    let mut pending = late.into_iter().peekable();
    for e in evs {
        while pending.peek().is_some_and(|l| l.t + 180_000 <= e.t) {
            arrivals.extend(pending.next());
        }
        arrivals.push(e);
    }
    arrivals.extend(pending);
    let sql = "SET 'table.exec.emit.late-fire.enabled' = 'true';
SET 'table.exec.emit.late-fire.delay' = '0 s';
SET 'table.exec.emit.allow-lateness' = '10 min';
CREATE TABLE q (k STRING, window_start BIGINT, window_end BIGINT, f DOUBLE, l DOUBLE,
  fx DOUBLE, n BIGINT)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO q
SELECT k, window_start, window_end, FIRST_VALUE(v), LAST_VALUE(v),
  FIRST_VALUE(v * 10) FILTER (WHERE c = 'x'), COUNT(*)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '2' MINUTES))
GROUP BY k, window_start, window_end;";
    let (toml, got, beyond) = replay_sql(DDL, sql, &arrivals, "firstlast", |out, toml, report| {
        (
            toml.to_string(),
            final_rows(&out.join("q.csv"), Some(4)),
            report.aggregations[0].2,
        )
    });
    assert!(toml.contains(r#"fn = "first_value""#), "{toml}");
    assert_eq!(beyond, 0, "no record beyond the lateness");
    // In arrival order: the first and last non-null values of each window.
    let want: Rows = group(&arrivals, tumbling(120_000))
        .into_iter()
        .map(|(w, es)| {
            let vs = || es.iter().filter_map(|e| e.v.map(|v| v as f64));
            let fx = es
                .iter()
                .filter(|e| e.c == "x")
                .find_map(|e| e.v.map(|v| v as f64 * 10.0));
            (
                w,
                vec![vs().next(), vs().next_back(), fx, Some(es.len() as f64)],
            )
        })
        .collect();
    assert_eq!(got, want);
    // The late records changed some windows' last value: arrival order, not event time.
    let by_time: usize = group(&arrivals, tumbling(120_000))
        .values()
        .filter(|es| {
            let mut sorted: Vec<&&Ev> = es.iter().filter(|e| e.v.is_some()).collect();
            sorted.sort_by_key(|e| e.t);
            sorted.last().map(|e| e.v) != es.iter().rfind(|e| e.v.is_some()).map(|e| e.v)
        })
        .count();
    assert!(
        by_time > 0,
        "the input should tell arrival order from event time"
    );
}

#[test]
fn output_columns_computed_from_aggregates() {
    let sql = "CREATE TABLE q (k STRING, window_start BIGINT, window_end BIGINT, n BIGINT,
  s DOUBLE, mx DOUBLE, mean DOUBLE, tenths BIGINT, big DOUBLE, cents DECIMAL(10, 2))
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO q
SELECT k, window_start, window_end, COUNT(*), SUM(v), MAX(v),
  SUM(v) / COUNT(*),
  CAST(SUM(v) * 10 / COUNT(*) AS BIGINT),
  CASE WHEN COUNT(*) > 12 THEN MAX(v) ELSE -1 END,
  CAST(SUM(v) / 3 AS DECIMAL(10, 2))
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '2' MINUTES))
GROUP BY k, window_start, window_end;";
    let evs = events(400, 31);
    let got = run(sql, &evs, "q", "computed");
    let mut want = Rows::new();
    for (w, es) in group(&evs, tumbling(120_000)) {
        let n = es.len() as f64;
        let s = sum(es.iter().map(|e| e.v));
        let mx = max(es.iter().map(|e| e.v));
        // CAST(x / 3 AS DECIMAL(10, 2)) of a whole x: hundredths rounded half up.
        let cents = s.map(|s| ((s as i64 * 100 + 1) / 3) as f64 / 100.0);
        want.insert(
            w,
            vec![
                Some(n),
                s,
                mx,
                s.map(|s| s / n),
                s.map(|s| (s * 10.0 / n).trunc()),
                if n > 12.0 { mx } else { Some(-1.0) },
                cents,
            ],
        );
    }
    assert_eq!(got, want);
}

/// WHERE, FILTER (WHERE …) and HAVING with arithmetic on either side of a comparison, on
/// INT values with NULLs: integer `/` and `%` truncate as Java's, a comparison with NULL is
/// not true (NOT of it neither), and a record on which WHERE divides by zero goes to the
/// dead letters (Flink's job would fail), checked against a direct computation.
#[test]
fn conditions_with_arithmetic_follow_flink() {
    let sql = "CREATE TABLE q (k STRING, window_start BIGINT, window_end BIGINT, n BIGINT,
  s INT, big BIGINT, thirds INT, small BIGINT)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO q
SELECT k, window_start, window_end,
  COUNT(*), SUM(v),
  COUNT(*) FILTER (WHERE v * 2 > 10),
  SUM(v) FILTER (WHERE (v + 1) % 3 = 0 AND v / 2 <> 1),
  COUNT(v) FILTER (WHERE NOT (v - 4 > CAST(v AS DOUBLE) / 2) AND v IN (1 + 1, 2 * 3, 8))
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '2' MINUTES))
WHERE 100 / (v - 3) > 10 OR c = 'x' OR v BETWEEN 1 - 1 AND v * 0
GROUP BY k, window_start, window_end
HAVING CAST(SUM(v) AS DOUBLE) / COUNT(*) > 1.5 OR COUNT(*) - SUM(v) >= 3";
    let evs = events(400, 5);
    let (got, dead) = run_ddl(INT_DDL, sql, &evs, "q", "where-arith");
    // `OR` evaluates its left side first: every v = 3 divides by zero.
    let zeros = evs.iter().filter(|e| e.v == Some(3)).count();
    assert!(zeros > 0);
    assert_eq!(dead.lines().count(), zeros, "{dead}");
    assert!(
        dead.lines().all(|l| l.contains("integer division by zero")),
        "{dead}"
    );
    let keep = |e: &Ev| match e.v {
        Some(3) => false,
        Some(v) => 100 / (v - 3) > 10 || e.c == "x" || v == 0,
        None => e.c == "x",
    };
    let kept: Vec<Ev> = evs.iter().filter(|e| keep(e)).cloned().collect();
    let mut want = Rows::new();
    for (w, es) in group(&kept, tumbling(120_000)) {
        let vals: Vec<i64> = es.iter().filter_map(|e| e.v).collect();
        let n = es.len() as i64;
        let s = (!vals.is_empty()).then(|| vals.iter().sum::<i64>());
        let big = vals.iter().filter(|&&v| v * 2 > 10).count() as f64;
        let thirds: Vec<i64> = vals
            .iter()
            .copied()
            .filter(|&v| (v + 1) % 3 == 0 && v / 2 != 1)
            .collect();
        let small = vals
            .iter()
            .filter(|&&v| (v - 4) as f64 <= v as f64 / 2.0 && [2, 6, 8].contains(&v))
            .count() as f64;
        // HAVING: a comparison with the NULL sum is not true.
        let having = s.is_some_and(|s| s as f64 / n as f64 > 1.5 || n - s >= 3);
        if having {
            want.insert(
                w,
                vec![
                    Some(n as f64),
                    s.map(|s| s as f64),
                    Some(big),
                    (!thirds.is_empty()).then(|| thirds.iter().sum::<i64>() as f64),
                    Some(small),
                ],
            );
        }
    }
    assert!(!want.is_empty());
    assert_eq!(got, want);
}
