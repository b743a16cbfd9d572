//! SQL outside the supported subset is an error naming the construct and its line and
//! column, never a silently different query: one row per construct.

mod common;

const DDL: &str = "CREATE TABLE events (k STRING, c STRING, v DOUBLE, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3), WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE)
  WITH ('connector' = 'filesystem', 'path' = 'in.jsonl', 'format' = 'json');
CREATE TABLE other (k STRING, w DOUBLE, t BIGINT, tt AS TO_TIMESTAMP_LTZ(t, 3),
  WATERMARK FOR tt AS tt) WITH ('connector' = 'filesystem', 'path' = 'o.jsonl', 'format' = 'json');
CREATE TABLE s (k STRING, window_start BIGINT, window_end BIGINT, n BIGINT)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
";

/// The DDL takes lines 1–7; each query starts on line 8.
const TUMBLE: &str = "FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE))";

#[test]
fn unsupported_constructs_name_their_line_and_column() {
    let cases: Vec<(String, u64, u64, &str)> = vec![
        // A join of two streams.
        (
            format!("INSERT INTO s SELECT e.k, window_start, window_end, COUNT(*) {TUMBLE} AS e\nJOIN other o ON e.k = o.k GROUP BY e.k, window_start, window_end;"),
            9, 6, "join",
        ),
        (
            "INSERT INTO s SELECT k, window_start, window_end, COUNT(*)\nFROM TABLE(TUMBLE(TABLE other, DESCRIPTOR(tt), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end;\nINSERT INTO s SELECT k, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end;".to_string(),
            10, 84, "one source table",
        ),
        // ORDER BY and LIMIT on a stream.
        (
            format!("INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE}\nGROUP BY k, window_start, window_end\nORDER BY k;"),
            10, 10, "ORDER BY on a stream",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE}\nGROUP BY k, window_start, window_end LIMIT 10;"),
            9, 44, "LIMIT",
        ),
        // A UDF (an unknown function) as an aggregate and in WHERE.
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  my_udf(v) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 3, "unknown function MY_UDF",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE}\nWHERE my_udf(v) > 1 GROUP BY k, window_start, window_end;"),
            9, 7, "function my_udf is not supported",
        ),
        // Non-windowed GROUP BY (an updating aggregation).
        (
            "INSERT INTO s SELECT k, COUNT(*) FROM events GROUP BY k;".to_string(),
            8, 39, "non-windowed",
        ),
        // Window TVF arguments.
        (
            "INSERT INTO s SELECT k, window_start, window_end, COUNT(*)\nFROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '10' SECOND))\nGROUP BY k, window_start, window_end;".to_string(),
            9, 79, "offset",
        ),
        (
            "INSERT INTO s SELECT k, window_start, window_end, COUNT(*)\nFROM TABLE(CUMULATE(TABLE events, DESCRIPTOR(ts), INTERVAL '7' MINUTE, INTERVAL '1' HOUR))\nGROUP BY k, window_start, window_end;".to_string(),
            9, 81, "must be a multiple of its step",
        ),
        (
            "INSERT INTO s SELECT k, window_start, window_end, COUNT(*)\nFROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))\nGROUP BY k, window_start, window_end;".to_string(),
            9, 44, "rowtime column",
        ),
        (
            "INSERT INTO s SELECT k, window_start, window_end, COUNT(*)\nFROM TABLE(SESSION(TABLE events PARTITION BY c, DESCRIPTOR(ts), INTERVAL '1' MINUTE))\nGROUP BY k, window_start, window_end;".to_string(),
            9, 46, "PARTITION BY",
        ),
        // HAVING: with early firing, on an aggregate the row does not carry, on a key.
        (
            format!("SET 'table.exec.emit.early-fire.enabled' = 'true';\nSET 'table.exec.emit.early-fire.delay' = '1 s';\nINSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE}\nGROUP BY k, window_start, window_end HAVING COUNT(*) > 2;"),
            11, 45, "early or late firing",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE}\nGROUP BY k, window_start, window_end HAVING SUM(v) > 2;"),
            9, 45, "not in the SELECT list",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE}\nGROUP BY k, window_start, window_end HAVING k = 'a';"),
            9, 45, "belongs in WHERE",
        ),
        // Conditions with expressions: an integer division in HAVING (a row cannot go to the
        // dead letters), and arithmetic the engine cannot compute as Flink does.
        (
            format!("INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE}\nGROUP BY k, window_start, window_end HAVING 10 < COUNT(*) / COUNT(*) + 1;"),
            9, 50, "divides integers in HAVING",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE}\nWHERE v > 1 AND v % 2 = 0 GROUP BY k, window_start, window_end;"),
            9, 17, "% (MOD) takes exact numeric operands",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE}\nWHERE CAST(v AS DECIMAL(10, 2)) * 2 > 1 GROUP BY k, window_start, window_end;"),
            9, 12, "DECIMAL arithmetic",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end, COUNT(*) FILTER (WHERE c * 2 > v) {TUMBLE}\nGROUP BY k, window_start, window_end;"),
            8, 74, "is a string column",
        ),
        // Expressions inside an aggregate that the engine cannot compute as Flink does.
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  SUM(CAST(v AS DECIMAL(10, 2)) * 2) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 12, "DECIMAL arithmetic",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  SUM(v % 2) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 7, "MOD) takes exact numeric operands",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  SUM(CAST(v AS FLOAT)) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 12, "32 bits",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  SUM(v + NULL) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 7, "untyped NULL",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  AVG(CAST(v AS DECIMAL(10, 2))) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 12, "AVG of a DECIMAL",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  SUM(CAST(v AS DECIMAL(20, 12))) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 12, "exact to 9 digits",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  SUM(ABS(v)) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 7, "function ABS",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  SUM(CASE c WHEN 'x' THEN v END) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 12, "simple CASE",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  SUM(CASE WHEN c = 'x' THEN c END) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 30, "expressions (arithmetic, CASE, CAST) are numeric",
        ),
        // Output columns computed from aggregates: the aggregates come first, no columns,
        // no integer division (a zero divisor would fail the Flink job, and no record can
        // take the blame).
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  SUM(v) / COUNT(*) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 3, "not an earlier column of the SELECT list",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  v * COUNT(*) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 3, "reads aggregates, not columns",
        ),
        (
            format!("CREATE TABLE s2 (k STRING, window_start BIGINT, window_end BIGINT, n BIGINT, r BIGINT)\n  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');\nINSERT INTO s2 SELECT k, window_start, window_end, COUNT(*),\n  100 / COUNT(*) {TUMBLE} GROUP BY k, window_start, window_end;"),
            10, 1, "cast an operand as double",
        ),
        // FIRST_VALUE / LAST_VALUE: no merge method (Flink refuses them where windows merge
        // accumulators), numbers only.
        (
            "INSERT INTO s SELECT k, window_start, window_end,\n  FIRST_VALUE(v) FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '2' MINUTE)) GROUP BY k, window_start, window_end;".to_string(),
            9, 3, "HOP window aggregation: Flink's FIRST_VALUE has no merge method",
        ),
        (
            "INSERT INTO s SELECT k, window_start, window_end,\n  LAST_VALUE(v) FROM TABLE(SESSION(TABLE events PARTITION BY k, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end;".to_string(),
            9, 3, "merging session",
        ),
        (
            "INSERT INTO s SELECT k, window_start, window_end,\n  LAST_VALUE(v) FROM TABLE(CUMULATE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '2' MINUTE)) GROUP BY k, window_start, window_end;".to_string(),
            9, 3, "slice-sharing",
        ),
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  FIRST_VALUE(c) {TUMBLE} GROUP BY k, window_start, window_end;"),
            9, 15, "of strings are not supported",
        ),
        // Hostile expressions: too deep or too long for the spec's [limits].
        (
            format!("INSERT INTO s SELECT k, window_start, window_end,\n  SUM({}v) {TUMBLE} GROUP BY k, window_start, window_end;", "v + ".repeat(300)),
            8, 1, "raise [limits] max_expression_nodes",
        ),
        // Output shape: a column order the engine does not write, a renamed key.
        (
            format!("INSERT INTO s SELECT k, window_end, window_start, COUNT(*) {TUMBLE}\nGROUP BY k, window_start, window_end;"),
            8, 25, "in this order",
        ),
        // OVER: RANGE frames, UNBOUNDED PRECEDING, FOLLOWING, another order, two windows,
        // with GROUP BY, a string column that is not a partition column.
        (
            "INSERT INTO s SELECT k, ts, v,\n  AVG(v) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW) FROM events;".to_string(),
            9, 3, "RANGE frames",
        ),
        (
            "INSERT INTO s SELECT k, ts, v,\n  AVG(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM events;".to_string(),
            9, 3, "UNBOUNDED PRECEDING",
        ),
        (
            "INSERT INTO s SELECT k, ts, v,\n  AVG(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) FROM events;".to_string(),
            9, 72, "FOLLOWING",
        ),
        (
            "INSERT INTO s SELECT k, ts, v,\n  AVG(v) OVER (PARTITION BY k ORDER BY v ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM events;".to_string(),
            9, 40, "ordered by the rowtime column `ts` ascending",
        ),
        (
            "INSERT INTO s SELECT k, ts, v,\n  AVG(v) OVER (PARTITION BY k ORDER BY ts DESC ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM events;".to_string(),
            9, 40, "ascending",
        ),
        (
            "INSERT INTO s SELECT k, ts, MIN(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW),\n  MAX(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) FROM events;".to_string(),
            9, 3, "different windows",
        ),
        (
            "INSERT INTO s SELECT k, ts, v, AVG(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)\nFROM events GROUP BY k, ts, v;".to_string(),
            9, 22, "OVER together with GROUP BY",
        ),
        (
            "INSERT INTO s SELECT k, ts, c,\n  AVG(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM events;".to_string(),
            8, 29, "not a number and not in PARTITION BY",
        ),
        // MATCH_RECOGNIZE.
        (
            "INSERT INTO s SELECT * FROM events\nMATCH_RECOGNIZE (PARTITION BY k ORDER BY ts MEASURES A.v AS av PATTERN (A B) DEFINE A AS v > 1, B AS v > 2) AS m;".to_string(),
            8, 29, "MATCH_RECOGNIZE is not supported",
        ),
        // Settings and options.
        (
            "SET 'table.exec.mini-batch.enabled' = 'true';".to_string(),
            8, 5, "supported settings",
        ),
        (
            "CREATE TABLE x (k STRING) WITH ('connector' = 'datagen');\nINSERT INTO s SELECT k, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE x, DESCRIPTOR(k), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end;".to_string(),
            9, 98, "WATERMARK",
        ),
        // Plain syntax errors keep sqlparser's position.
        (
            "INSERT INTO s SELEC k;".to_string(),
            8, 15, "syntax error",
        ),
    ];
    common::assert_errors(DDL, &cases);
}

#[test]
fn input_is_bounded_by_named_constants() {
    let big = format!("{DDL}-- {}", "x".repeat(eventide_sql::MAX_SQL_BYTES));
    let e = eventide_sql::compile(&big).unwrap_err().to_string();
    assert!(e.contains("eventide_sql::MAX_SQL_BYTES"), "{e}");
    let deep = format!(
        "{DDL}INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE} WHERE {}v > 1{} GROUP BY k, window_start, window_end;",
        "(".repeat(500),
        ")".repeat(500)
    );
    let e = eventide_sql::compile(&deep).unwrap_err().to_string();
    assert!(e.contains("eventide_sql::MAX_NESTING"), "{e}");
}

#[test]
fn spec_validation_errors_point_at_the_insert() {
    let q = "INSERT INTO s SELECT k, window_start, window_end, COUNT(*)\nFROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '72' HOUR))\nGROUP BY k, window_start, window_end;";
    let (l, c, m) = common::error(&format!("{DDL}{q}"));
    assert_eq!((l, c), (8, 1), "{m}");
    assert!(
        m.contains("INSERT INTO s") && m.contains("max_windows_per_event"),
        "{m}"
    );
}

/// Flink's emit settings become the trigger and lateness `FlinkEmit` defines, and a late
/// firing with no lateness is refused.
#[test]
fn emit_settings_map_onto_triggers_and_lateness() {
    let q = format!("INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE} GROUP BY k, window_start, window_end;");
    let compile = |sets: &str| eventide_sql::compile(&format!("{sets}\n{DDL}{q}"));
    let c = compile(
        "SET 'table.exec.emit.early-fire.enabled' = 'true';
         SET 'table.exec.emit.early-fire.delay' = '0 s';",
    )
    .unwrap();
    assert!(
        c.toml.contains("trigger = \"watermark(early = count(1))\""),
        "{}",
        c.toml
    );
    let c = compile(
        "SET 'table.exec.emit.late-fire.enabled' = 'true';
         SET 'table.exec.emit.late-fire.delay' = '10 s';
         SET 'table.exec.state.ttl' = '1 h';",
    )
    .unwrap();
    assert!(c.toml.contains("late = after(10s)"), "{}", c.toml);
    assert_eq!(c.spec.aggregations[0].allowed_lateness_ms, 3_600_000);
    let e = compile(
        "SET 'table.exec.emit.late-fire.enabled' = 'true';
         SET 'table.exec.emit.late-fire.delay' = '0 s';",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("allow-lateness"), "{e}");
    // No emit settings: the spec's default trigger, exactly as a TOML spec without one.
    let c = compile("").unwrap();
    assert!(!c.toml.contains("trigger"), "{}", c.toml);
}

/// Lookup joins: what is refused, with its position.
#[test]
fn lookup_joins_outside_the_subset_name_their_position() {
    let ddl = "CREATE TABLE events (k STRING, v DOUBLE, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3), proc_time AS PROCTIME(),
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE)
  WITH ('connector' = 'filesystem', 'path' = 'in.jsonl', 'format' = 'json');
CREATE TABLE dim (id STRING, tier STRING) WITH ('connector' = 'filesystem', 'path' = 'dim.csv', 'format' = 'csv');
CREATE TABLE s (tier STRING, window_start BIGINT, window_end BIGINT, n BIGINT)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
";
    let insert = "INSERT INTO s SELECT tier, window_start, window_end, COUNT(*)
FROM TABLE(TUMBLE(TABLE v, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY tier, window_start, window_end;";
    let cases: Vec<(String, u64, u64, &str)> = vec![
        // AS OF the rowtime: an event-time (versioned table) join.
        (
            format!("CREATE VIEW v AS SELECT e.*, d.tier FROM events AS e\nJOIN dim FOR SYSTEM_TIME AS OF e.ts AS d ON e.k = d.id;\n{insert}"),
            9, 32, "event-time (versioned table) joins",
        ),
        // A join without FOR SYSTEM_TIME AS OF: two streams (or a regular join).
        (
            format!("CREATE VIEW v AS SELECT e.*, d.tier FROM events AS e\nJOIN dim AS d ON e.k = d.id;\n{insert}"),
            9, 6, "without FOR SYSTEM_TIME AS OF",
        ),
        // A view that filters.
        (
            format!("CREATE VIEW v AS SELECT e.*, d.tier FROM events AS e\nJOIN dim FOR SYSTEM_TIME AS OF e.proc_time AS d ON e.k = d.id\nWHERE e.v > 1;\n{insert}"),
            10, 7, "a view is the source table with lookup joins",
        ),
        // A non-equality ON.
        (
            format!("CREATE VIEW v AS SELECT e.*, d.tier FROM events AS e\nJOIN dim FOR SYSTEM_TIME AS OF e.proc_time AS d ON e.k > d.id;\n{insert}"),
            9, 52, "equalities",
        ),
        // An inner join's view and the source read by two INSERTs.
        (
            format!("CREATE VIEW v AS SELECT e.*, d.tier FROM events AS e\nJOIN dim FOR SYSTEM_TIME AS OF e.proc_time AS d ON e.k = d.id;\n{insert}\nINSERT INTO s SELECT k, window_start, window_end, COUNT(*)\nFROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end;"),
            13, 25, "read the view in every INSERT",
        ),
        // A lookup join after the window TVF.
        (
            "INSERT INTO s SELECT d.tier, window_start, window_end, COUNT(*)\nFROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) AS e\nJOIN dim FOR SYSTEM_TIME AS OF e.proc_time AS d ON e.k = d.id GROUP BY d.tier, window_start, window_end;".to_string(),
            10, 6, "goes in a view",
        ),
    ];
    common::assert_errors(ddl, &cases);
}

/// An expression nested deeper than the parser follows is an error naming the bound, not a
/// stack overflow (the engine's own depth bound, `[limits] max_expression_depth`, is
/// tested with the engine).
#[test]
fn deep_expressions_inside_aggregates_are_errors() {
    let query = format!(
        "INSERT INTO s SELECT k, window_start, window_end,\n  SUM({}v{}) {TUMBLE} GROUP BY k, window_start, window_end;",
        "v + (".repeat(5000),
        ")".repeat(5000)
    );
    match eventide_sql::compile(&format!("{DDL}{query}")) {
        Err(e) => assert!(e.to_string().contains("MAX_NESTING"), "{e}"),
        Ok(_) => panic!("accepted a 5000-deep expression"),
    }
}

/// Conditions with deep or long expressions are errors naming the bound: beyond the SQL
/// parser's depth (`MAX_NESTING`), or beyond the engine's `[limits] max_expression_depth`
/// and `max_expression_nodes` for each side of a comparison.
#[test]
fn deep_expressions_in_conditions_are_errors() {
    for (depth, want) in [(5000, "MAX_NESTING"), (40, "max_expression_depth")] {
        let query = format!(
            "INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE}\nWHERE {}v{} > 1 GROUP BY k, window_start, window_end;",
            "CAST(".repeat(depth),
            " AS DOUBLE)".repeat(depth)
        );
        match eventide_sql::compile(&format!("{DDL}{query}")) {
            Err(e) => assert!(e.to_string().contains(want), "{depth}: {e}"),
            Ok(_) => panic!("accepted a {depth}-deep condition"),
        }
    }
    let wide = format!(
        "INSERT INTO s SELECT k, window_start, window_end, COUNT(*) {TUMBLE}\nWHERE {} > 1 GROUP BY k, window_start, window_end;",
        vec!["v"; 300].join(" + ")
    );
    match eventide_sql::compile(&format!("{DDL}{wide}")) {
        Err(e) => assert!(e.to_string().contains("max_expression_nodes"), "{e}"),
        Ok(_) => panic!("accepted a 300-term condition"),
    }
}
