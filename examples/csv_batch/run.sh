#!/bin/sh
# A crash-safe CSV batch against the local simulator, run twice: the second run replays every
# finished row from the journal and refunds nothing again. Runs from any directory; the journal,
# its lock and the results go to a temporary directory that is removed at the end, so the
# repository is left as it was.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/paykit-csv-batch.XXXXXX")
SIM=

cleanup() {
    if [ -n "$SIM" ]; then
        kill "$SIM" 2>/dev/null || true
        wait "$SIM" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Any free port; the simulator prints its banner only once it is listening.
paykit simulator serve --auto-orders --port 0 >"$WORK/simulator.log" 2>&1 &
SIM=$!
until grep -q "listening on" "$WORK/simulator.log"; do
    if ! kill -0 "$SIM" 2>/dev/null; then
        cat "$WORK/simulator.log" >&2
        exit 2
    fi
    sleep 0.1
done
# paykit.toml names port 8000; the environment wins over the file (PAYKIT_<PROVIDER>_<KEY>).
PAYKIT_WECHATPAY_BASE_URL=$(sed -n 's/^ *WeChat Pay v2 *base_url=//p' "$WORK/simulator.log")
export PAYKIT_WECHATPAY_BASE_URL

# Each row's refund number is journalled before it is sent. Exit status 1 means some row did not
# succeed (the malformed last row, by design).
for run in first second; do
    echo "== $run run ==" >&2
    paykit refunds run "$HERE/refunds.csv" --provider wechatpay --config "$HERE/paykit.toml" \
        --journal "$WORK/refunds.journal.db" --out "$WORK/results-$run.jsonl" || true
done
echo "== results of the second run (replayed from the journal) =="
cat "$WORK/results-second.jsonl"
