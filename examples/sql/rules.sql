-- The SQL twin of examples/rules: the rules over the reference workload, with no INSERT
-- (a job of rules only). Flink SQL has no counterpart of the rules (MATCH_RECOGNIZE does
-- not map cleanly, see docs/sql.md), so the job names a rules file, Eventide's option;
-- the file is read relative to this SQL file and holds only [[rule]] tables.
--   eventide replay --sql examples/sql/rules.sql --input events.jsonl --out out/
-- writes out/alerts.jsonl. `--rules FILE` (replay) and `--rules-s3` (the consumer) replace
-- these rules, as they do a TOML spec's.
SET 'eventide.rules' = 'rules.toml';

CREATE TABLE events (
  subscriber_id STRING,
  counter STRING,
  `value` DOUBLE,
  event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH ('connector' = 'filesystem', 'path' = 'events.jsonl', 'format' = 'json');
