#!/usr/bin/env bash
# Every figure of docs/PERFORMANCE.md, in one run on this machine:
#   bash scripts/perf_all.sh [OUTDIR]   (writes OUTDIR/twenty-twenty.svg; prints the rest)
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-$(mktemp -d)}
mkdir -p "$out"
py=${PYTHON:-python}
run() { echo; echo "\$ $*"; "$@"; }
run "$py" raw_sqlite.py
run "$py" drain.py --synchronous normal
run "$py" drain.py --synchronous full
run "$py" enqueue.py
run "$py" latency.py --tasks 200
run "$py" claim_depth.py --depths 1000,100000,1000000
run "$py" -m ygg bench six twenty-twenty mixed-thirty --svg "$out/twenty-twenty-all.svg"
run "$py" -m ygg bench twenty-twenty --svg "$out/twenty-twenty.svg"
run "$py" -m ygg bench throughput --tasks 5000
