-- The SQL twin of examples/streaming-systems/allowed-lateness:
-- Figure 2-12: early (aligned to the minute) / on-time / late firings with 1 minute of allowed lateness, accumulating.
-- Team scores summed per window; the watermark comes from the input's
-- {"advance_watermark": …} control lines (SOURCE_WATERMARK()). The triggers are Eventide's
-- options (docs/sql.md, "Eventide's options"): Flink SQL's emit options cannot express them.
--   eventide replay --sql examples/sql/streaming-systems/allowed-lateness.sql \
--     --input examples/streaming-systems/allowed-lateness/input.jsonl --out out/
SET 'eventide.trigger' = 'watermark(early = every(1m), late = count(1))';
SET 'eventide.allowed-lateness' = '1 min';
SET 'eventide.accumulation' = 'accumulating';

CREATE TABLE scores_in (
  team STRING,
  score DOUBLE,
  event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS SOURCE_WATERMARK()
) WITH ('connector' = 'filesystem', 'path' = 'input.jsonl', 'format' = 'json');

-- Rows in firing order, as the book draws them.
CREATE TABLE scores (team STRING, window_start BIGINT, window_end BIGINT, score DOUBLE)
WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv', 'sink.order' = 'fired');

INSERT INTO scores
SELECT team, window_start, window_end, SUM(score) AS score
FROM TABLE(TUMBLE(TABLE scores_in, DESCRIPTOR(ts), INTERVAL '2' MINUTES))
GROUP BY team, window_start, window_end;
