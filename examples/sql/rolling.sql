-- The rolling example (examples/rolling/pipeline.toml) in Flink SQL: an OVER aggregation,
-- each event with the average, maximum and count of its subscriber's last 3 values by
-- rowtime. Run from the repository root (the paths are relative to it):
--   eventide replay --sql examples/sql/rolling.sql --out /tmp/rolling
CREATE TABLE events (
  subscriber_id STRING,
  counter STRING,
  `value` DOUBLE,
  event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH ('connector' = 'filesystem', 'path' = 'examples/rolling/events.jsonl', 'format' = 'json');

-- ts is written as epoch milliseconds.
CREATE TABLE rolling (subscriber_id STRING, ts BIGINT, `value` DOUBLE, n BIGINT, avg3 DOUBLE, max3 DOUBLE)
  WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');

INSERT INTO rolling
SELECT subscriber_id, ts, `value`, COUNT(*) OVER w, AVG(`value`) OVER w, MAX(`value`) OVER w
FROM events
WINDOW w AS (PARTITION BY subscriber_id ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW);
