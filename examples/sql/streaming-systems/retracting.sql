-- The SQL twin of examples/streaming-systems/retracting (Streaming Systems, Example 2-10):
-- fixed 2-minute windows with early firings 1 minute of processing time after the first
-- element of a pane, a late firing for every late element, one day of allowed lateness.
-- Flink's early and late firings update the window's row, so each pane retracts the one
-- it replaces: accumulation "retracting". Flink skips an on-time pane that has nothing new
-- (on_time = "if_non_empty").
--   eventide replay --sql examples/sql/streaming-systems/retracting.sql \
--     --input examples/streaming-systems/retracting/input.jsonl --out out/
SET 'table.exec.emit.early-fire.enabled' = 'true';
SET 'table.exec.emit.early-fire.delay' = '1 min';
SET 'table.exec.emit.late-fire.enabled' = 'true';
SET 'table.exec.emit.late-fire.delay' = '0 s';
SET 'table.exec.emit.allow-lateness' = '1 d';

CREATE TABLE scores_in (
  team STRING,
  score DOUBLE,
  event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS SOURCE_WATERMARK()
) WITH ('connector' = 'filesystem', 'path' = 'input.jsonl', 'format' = 'json');

CREATE TABLE scores (team STRING, window_start BIGINT, window_end BIGINT, score DOUBLE)
WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv', 'sink.order' = 'fired');

INSERT INTO scores
SELECT team, window_start, window_end, SUM(score) AS score
FROM TABLE(TUMBLE(TABLE scores_in, DESCRIPTOR(ts), INTERVAL '2' MINUTES))
GROUP BY team, window_start, window_end;
