-- The enrichment example (examples/enrichment/pipeline.toml) in Flink SQL: reference events
-- joined with a per-subscriber tier and threshold from a slow table (a lookup join), then
-- aggregated by tier. Run from the repository root (the paths are relative to it):
--   eventide replay --sql examples/sql/enrichment.sql --out /tmp/enriched
CREATE TABLE events (
  subscriber_id STRING,
  counter STRING,
  `value` DOUBLE,
  event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  proc_time AS PROCTIME(),
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH ('connector' = 'filesystem', 'path' = 'examples/enrichment/events.jsonl', 'format' = 'json');

-- The lookup table: a CSV file with a header row (in AWS, 'path' = 's3://bucket/ref/subscribers/'
-- and 'lookup.join.cache.ttl' = '5 min' to reload it). The JOIN drops an event whose subscriber
-- is not in the table, as Flink's does; 'lookup.on-miss' (an Eventide option) keeps it in the
-- dead letters with the reason, as the TOML example does.
CREATE TABLE subscribers (
  id STRING,
  tier STRING,
  threshold DOUBLE,
  PRIMARY KEY (id) NOT ENFORCED
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/enrichment/subscribers.csv',
  'format' = 'csv',
  'lookup.on-miss' = 'dead-letter'
);

CREATE TEMPORARY VIEW enriched AS
SELECT e.*, s.tier, s.threshold AS sub_threshold
FROM events AS e
JOIN subscribers FOR SYSTEM_TIME AS OF e.proc_time AS s
  ON e.subscriber_id = s.id;

CREATE TABLE by_tier (
  tier STRING, counter STRING, window_start BIGINT, window_end BIGINT,
  `count` BIGINT, `sum` DECIMAL(18, 2), threshold DOUBLE
) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');

CREATE TABLE gold_x (
  subscriber_id STRING, window_start BIGINT, window_end BIGINT, `sum` DECIMAL(18, 2)
) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO by_tier
  SELECT tier, counter, window_start, window_end,
         COUNT(*), CAST(SUM(`value`) AS DECIMAL(18, 2)), MAX(sub_threshold)
  FROM TABLE(TUMBLE(TABLE enriched, DESCRIPTOR(ts), INTERVAL '15' MINUTES))
  GROUP BY tier, counter, window_start, window_end;

  INSERT INTO gold_x
  SELECT subscriber_id, window_start, window_end, CAST(SUM(`value`) AS DECIMAL(18, 2))
  FROM TABLE(TUMBLE(TABLE enriched, DESCRIPTOR(ts), INTERVAL '15' MINUTES))
  WHERE tier = 'gold' AND counter = 'x'
  GROUP BY subscriber_id, window_start, window_end;
END;
