-- The SQL twin of examples/custom-decoder: payments in a binary layout (epoch ms | user
-- length | user | amount), summed per user and minute. 'format' = 'custom' is Eventide's:
-- the records are decoded by a Decoder of your own (examples/custom-decoder/decoder.rs),
-- which the binary attaches to the compiled spec with PipelineSpec::with_decoder;
-- `eventide_consumer::main_with_decoder` does so for .sql pipelines as for .toml ones:
--   target/release/examples/custom_decoder_consumer worker \
--     --pipeline examples/sql/custom-decoder.sql --name spend --prefix demo --create
-- A pipeline with 'format' = 'custom' does not run without a decoder.
CREATE TABLE payments (
  `user` STRING,
  amount DOUBLE,
  t BIGINT,
  ts AS TO_TIMESTAMP_LTZ(t, 3),
  WATERMARK FOR ts AS ts
) WITH ('connector' = 'kinesis', 'stream' = 'payments', 'format' = 'custom');

CREATE TABLE spend (`user` STRING, window_start BIGINT, window_end BIGINT, total DOUBLE)
WITH ('connector' = 'dynamodb', 'table-name' = 'demo-results');

INSERT INTO spend
SELECT `user`, window_start, window_end, SUM(amount)
FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY `user`, window_start, window_end;
