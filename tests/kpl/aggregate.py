"""Packs records into KPL aggregated records with AWS Labs' own library (aws-kinesis-agg,
pinned in localstack/requirements.txt), for the end-to-end test tests/tests/kpl.rs.

stdin: JSON lines {"group": <int or null>, "pk": <partition key>, "data": <text>}, in
order. Consecutive lines of one group go into aggregated records (the library starts a new
one when a record is full); a line whose group is null is put as a plain record.
stdout: one JSON line per Kinesis record, in order: {"pk": ..., "ehk": ... or null,
"data": <hex of the record's bytes>}.
"""

import json
import sys

from aws_kinesis_agg.aggregator import RecordAggregator


def emit(pk, ehk, data):
    print(json.dumps({"pk": pk, "ehk": ehk, "data": data.hex()}))


def flush(agg):
    if agg.get_num_user_records() > 0:
        emit(*agg.clear_and_get().get_contents())


def main():
    agg = RecordAggregator()
    group = None
    for line in sys.stdin:
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec["group"] != group:
            flush(agg)
            group = rec["group"]
        data = rec["data"].encode("utf-8")
        if group is None:
            emit(rec["pk"], None, data)
            continue
        full = agg.add_user_record(rec["pk"], data)
        if full is not None:
            emit(*full.get_contents())
    flush(agg)


if __name__ == "__main__":
    main()
