-- The four reference queries of ../shared/README.md (q1–q4) as Flink SQL runs them, in one
-- statement set that reads the source once. The same plan as examples/reference/pipeline.toml:
--   eventide explain examples/sql/reference.sql
--   eventide replay --sql examples/sql/reference.sql --input events.jsonl --out out/
-- `--input` and `--out` override the 'path' options below.

CREATE TABLE events (
  subscriber_id STRING,
  counter STRING,
  `value` DOUBLE,
  event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH (
  'connector' = 'filesystem',
  'path' = 'events.jsonl',
  'format' = 'json'
);

-- The sinks: one CSV file per query in 'path' (the output directory), rows sorted by key.
-- window_start and window_end are written as epoch milliseconds.
CREATE TABLE q1 (
  subscriber_id STRING, counter STRING, window_start BIGINT, window_end BIGINT,
  `count` BIGINT, `sum` DOUBLE, `min` DOUBLE, `max` DOUBLE
) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');

CREATE TABLE q2 (
  subscriber_id STRING, counter STRING, window_start BIGINT, window_end BIGINT,
  `avg` DOUBLE, `count` BIGINT
) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');

CREATE TABLE q3 (
  subscriber_id STRING, window_start BIGINT, window_end BIGINT, `count` BIGINT, `sum` DOUBLE
) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');

CREATE TABLE q4 (
  subscriber_id STRING, window_start BIGINT, window_end BIGINT, sum_x DOUBLE, count_x BIGINT
) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');

EXECUTE STATEMENT SET
BEGIN
  -- q1: tumbling 15 minutes
  INSERT INTO q1
  SELECT subscriber_id, counter, window_start, window_end,
         COUNT(*), SUM(`value`), MIN(`value`), MAX(`value`)
  FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '15' MINUTES))
  GROUP BY subscriber_id, counter, window_start, window_end;

  -- q2: hopping, slide 15 minutes, size 2 hours (HOP takes the slide first)
  INSERT INTO q2
  SELECT subscriber_id, counter, window_start, window_end, AVG(`value`), COUNT(*)
  FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '15' MINUTES, INTERVAL '2' HOURS))
  GROUP BY subscriber_id, counter, window_start, window_end;

  -- q3: sessions per subscriber, gap 30 minutes
  INSERT INTO q3
  SELECT subscriber_id, window_start, window_end, COUNT(*), SUM(`value`)
  FROM TABLE(SESSION(TABLE events PARTITION BY subscriber_id, DESCRIPTOR(ts), INTERVAL '30' MINUTES))
  GROUP BY subscriber_id, window_start, window_end;

  -- q4: hopping, slide 1 hour, size 72 hours, counter x only
  INSERT INTO q4
  SELECT subscriber_id, window_start, window_end, SUM(`value`), COUNT(*)
  FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '1' HOUR, INTERVAL '72' HOURS))
  WHERE counter = 'x'
  GROUP BY subscriber_id, window_start, window_end;
END;
