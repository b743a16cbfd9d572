-- The SQL twin of examples/framed-zip: billing exports in a zip archive, each entry JSON
-- lines between a two-line banner and a trailer that declares the record count. The file
-- layer is described by Eventide's source options (docs/sql.md, "Eventide's options"):
-- Flink's filesystem connector has none for banners and counted trailers.
--   python3 examples/framed-zip/make_zip.py /tmp/billing.zip
--   eventide replay --sql examples/sql/framed-zip.sql --input /tmp/billing.zip --out out/framed/
CREATE TABLE billing (
  subscriber STRING,
  counter STRING,
  `value` DOUBLE,
  ts BIGINT,
  rowtime AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '5' MINUTE
) WITH (
  'connector' = 'filesystem',
  'path' = 'billing.zip',
  'format' = 'json',
  'eventide.compression' = 'zip',
  'eventide.header-lines' = '2',
  'eventide.footer-pattern' = '^TRAILER records=(?P<count>\d+)$'
);

CREATE TABLE hourly (
  subscriber STRING, counter STRING, window_start BIGINT, window_end BIGINT,
  `count` BIGINT, total DECIMAL(10, 1)
) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');

INSERT INTO hourly
SELECT subscriber, counter, window_start, window_end,
       COUNT(*), CAST(SUM(`value`) AS DECIMAL(10, 1))
FROM TABLE(TUMBLE(TABLE billing, DESCRIPTOR(rowtime), INTERVAL '1' HOUR))
GROUP BY subscriber, counter, window_start, window_end;
