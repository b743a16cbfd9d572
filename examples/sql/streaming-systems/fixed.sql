-- The SQL twin of examples/streaming-systems/{fixed-batch,fixed-watermark-perfect,
-- fixed-watermark-heuristic}: team scores summed in fixed 2-minute windows, fired when the
-- watermark passes the end of the window. SOURCE_WATERMARK() takes the watermark from the
-- input's {"advance_watermark": …} control lines (the three cases differ only in those).
--   eventide replay --sql examples/sql/streaming-systems/fixed.sql \
--     --input examples/streaming-systems/fixed-batch/input.jsonl --out out/
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
