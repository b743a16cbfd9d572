-- The SQL twin of examples/streaming-systems/sessions-per-record-accumulating:
-- Figure 8-13: sessions (gap 1 minute), a pane per record, accumulating.
-- Team scores summed per window; the watermark comes from the input's
-- {"advance_watermark": …} control lines (SOURCE_WATERMARK()). The triggers are Eventide's
-- options (docs/sql.md, "Eventide's options"): Flink SQL's emit options cannot express them.
--   eventide replay --sql examples/sql/streaming-systems/sessions-per-record-accumulating.sql \
--     --input examples/streaming-systems/sessions-per-record-accumulating/input.jsonl --out out/
SET 'eventide.trigger' = 'watermark(early = count(1))';
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
FROM TABLE(SESSION(TABLE scores_in PARTITION BY team, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY team, window_start, window_end;
