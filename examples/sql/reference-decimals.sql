-- The four reference queries of reference.sql, with the printed decimals of the canonical
-- format (../shared/reference/common.py: sums, minima and maxima with 2 decimals, averages
-- with 6) given by CAST(… AS DECIMAL(p, s)). This is exactly the plan of
-- examples/reference/pipeline.toml, and its files are byte-identical to the oracle's.
--   eventide replay --sql examples/sql/reference-decimals.sql --input events.jsonl --out out/

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
         COUNT(*), CAST(SUM(`value`) AS DECIMAL(18, 2)), CAST(MIN(`value`) AS DECIMAL(18, 2)), CAST(MAX(`value`) AS DECIMAL(18, 2))
  FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '15' MINUTES))
  GROUP BY subscriber_id, counter, window_start, window_end;

  -- q2: hopping, slide 15 minutes, size 2 hours (HOP takes the slide first)
  INSERT INTO q2
  SELECT subscriber_id, counter, window_start, window_end, CAST(AVG(`value`) AS DECIMAL(18, 6)), COUNT(*)
  FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '15' MINUTES, INTERVAL '2' HOURS))
  GROUP BY subscriber_id, counter, window_start, window_end;

  -- q3: sessions per subscriber, gap 30 minutes
  INSERT INTO q3
  SELECT subscriber_id, window_start, window_end, COUNT(*), CAST(SUM(`value`) AS DECIMAL(18, 2))
  FROM TABLE(SESSION(TABLE events PARTITION BY subscriber_id, DESCRIPTOR(ts), INTERVAL '30' MINUTES))
  GROUP BY subscriber_id, window_start, window_end;

  -- q4: hopping, slide 1 hour, size 72 hours, counter x only
  INSERT INTO q4
  SELECT subscriber_id, window_start, window_end, CAST(SUM(`value`) AS DECIMAL(18, 2)), COUNT(*)
  FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '1' HOUR, INTERVAL '72' HOURS))
  WHERE counter = 'x'
  GROUP BY subscriber_id, window_start, window_end;
END;
