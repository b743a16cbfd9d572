//! `eventide replay --sql`, `validate`, `bench` and `explain` on a Flink SQL pipeline: the
//! source and sink `'path'` options are used when `--input` / `--out` are not given, and
//! the flags override them; errors name the line and column.

use std::path::Path;
use std::process::Command;

fn eventide(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_eventide"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SQL: &str = "
CREATE TABLE clicks (user_id STRING, n DOUBLE, event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
  WITH ('connector' = 'filesystem', 'path' = 'clicks.jsonl', 'format' = 'json');
CREATE TABLE per_user (user_id STRING, window_start BIGINT, window_end BIGINT, total DOUBLE)
  WITH ('connector' = 'filesystem', 'path' = 'results', 'format' = 'csv');
INSERT INTO per_user
SELECT user_id, window_start, window_end, SUM(n)
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY user_id, window_start, window_end;
";

#[test]
fn sql_pipelines_run_with_their_paths_or_the_flags() {
    let dir = std::env::temp_dir().join(format!("eventide-sql-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("job.sql"), SQL).unwrap();
    std::fs::write(
        dir.join("clicks.jsonl"),
        "{\"user_id\":\"a\",\"n\":1,\"event_time\":1000}\n{\"user_id\":\"a\",\"n\":2,\"event_time\":2000}\n{\"user_id\":\"b\",\"n\":5,\"event_time\":61000}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("other.jsonl"),
        "{\"user_id\":\"c\",\"n\":7,\"event_time\":1000}\n",
    )
    .unwrap();
    let expected = "user_id,window_start,window_end,total\na,0,60000,3\nb,60000,120000,5\n";

    // The paths of the SQL.
    let (ok, _, err) = eventide(&dir, &["replay", "--sql", "job.sql"]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("results/per_user.csv")).unwrap(),
        expected
    );
    // --input and --out override them; --pipeline takes .sql too.
    let (ok, _, err) = eventide(
        &dir,
        &[
            "replay",
            "--pipeline",
            "job.sql",
            "--input",
            "other.jsonl",
            "--out",
            "o2",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("o2/per_user.csv")).unwrap(),
        "user_id,window_start,window_end,total\nc,0,60000,7\n"
    );
    // validate and bench.
    let (ok, out, err) = eventide(&dir, &["validate", "--sql", "job.sql"]);
    assert!(
        ok && out.contains("per_user: group by [user_id]"),
        "{out}{err}"
    );
    let (ok, out, err) = eventide(&dir, &["bench", "--sql", "job.sql", "--out", "o3"]);
    assert!(ok && out.contains("events: 3"), "{out}{err}");
    // explain prints a spec that loads as TOML and is the same plan.
    let (ok, out, err) = eventide(&dir, &["explain", "job.sql"]);
    assert!(ok, "{err}");
    std::fs::write(dir.join("explained.toml"), &out).unwrap();
    let (ok, _, err) = eventide(
        &dir,
        &[
            "replay",
            "--pipeline",
            "explained.toml",
            "--input",
            "clicks.jsonl",
            "--out",
            "o4",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("o4/per_user.csv")).unwrap(),
        expected
    );
    // An error names the file, the line and the column.
    std::fs::write(dir.join("bad.sql"), SQL.replace("SUM(n)", "SUM(n) + 1")).unwrap();
    let (ok, _, err) = eventide(&dir, &["validate", "--sql", "bad.sql"]);
    assert!(!ok);
    assert!(
        err.contains("bad.sql") && err.contains("line 8, column 43"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `'format' = 'custom'` needs a decoder of your own: `validate` takes the pipeline, `replay`
/// refuses it rather than read its records as JSON. Rules beside the SQL file run.
#[test]
fn custom_formats_are_refused_by_replay_and_rules_files_run() {
    let dir = std::env::temp_dir().join(format!("eventide-sql-cli-ext-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("jobs")).unwrap();
    std::fs::write(
        dir.join("custom.sql"),
        SQL.replace("'format' = 'json')", "'format' = 'custom')"),
    )
    .unwrap();
    std::fs::write(
        dir.join("clicks.jsonl"),
        "{\"user_id\":\"a\",\"n\":1,\"event_time\":1000}\n",
    )
    .unwrap();
    let (ok, out, err) = eventide(&dir, &["validate", "--sql", "custom.sql"]);
    assert!(ok, "{err}");
    assert!(out.contains("valid"), "{out}");
    let (ok, _, err) = eventide(&dir, &["replay", "--sql", "custom.sql"]);
    assert!(!ok);
    assert!(err.contains("'format' = 'custom'"), "{err}");

    // A job of rules only, its rules file beside the SQL file (not in the working directory).
    let rules_sql = SQL[..SQL.find("CREATE TABLE per_user").unwrap()]
        .replace("'clicks.jsonl'", "'../clicks.jsonl'");
    std::fs::write(
        dir.join("jobs/rules.sql"),
        format!("SET 'eventide.rules' = 'rules.toml';\n{rules_sql}"),
    )
    .unwrap();
    std::fs::write(
        dir.join("jobs/rules.toml"),
        "[[rule]]\nid = \"any\"\nkey = [\"user_id\"]\nwhen = 'count(1h) >= 1'\nevery = \"1m\"\n",
    )
    .unwrap();
    let (ok, _, err) = eventide(
        &dir,
        &[
            "replay",
            "--sql",
            "jobs/rules.sql",
            "--input",
            "clicks.jsonl",
            "--out",
            "alerts",
        ],
    );
    assert!(ok, "{err}");
    let alerts = std::fs::read_to_string(dir.join("alerts/alerts.jsonl")).unwrap();
    assert!(alerts.contains("\"any\""), "{alerts}");
    let _ = std::fs::remove_dir_all(&dir);
}
