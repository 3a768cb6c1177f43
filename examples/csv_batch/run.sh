#!/bin/sh
# A crash-safe CSV batch against the local simulator. Run from this directory.
set -e
paykit simulator serve --auto-orders --port 8000 >/dev/null &
SIM=$!
trap 'kill $SIM' EXIT
sleep 2
# Each row's refund number is journalled (refunds.csv.journal.db) before it is sent; run it twice:
# the second run replays every finished row from the journal and refunds nothing again.
paykit refunds run refunds.csv --provider wechatpay --config paykit.toml --out results.jsonl || true
paykit refunds run refunds.csv --provider wechatpay --config paykit.toml --out results.jsonl || true
cat results.jsonl
