#!/usr/bin/env bash
# End-to-end overhead of the distributed path: `barrage run` (controller + 2 local workers)
# versus one standalone worker (`barrage worker --standalone`), same plan, same target (the
# reference runtime behind a zero-delay mock LLM), alternating, ROUNDS times each.
# The figure is the request count over the same scheduled duration (closed model: the
# target's speed sets the rate; the rig must not slow it down).
#
#   cargo build --release -p barrage-controller && bench/controller/e2e_overhead.sh [ROUNDS] [VUS] [SECS]
set -euo pipefail
B=${BARRAGE:-target/release/barrage}
ROUNDS=${1:-3}
VUS=${2:-4}
SECS=${3:-20}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

first_line() { # file -> the address after "listening on "
  for _ in $(seq 100); do
    if [ -s "$1" ]; then sed -n '1s/^listening on //p' "$1"; return; fi
    sleep 0.1
  done
  echo "no listening line in $1" >&2; exit 1
}

# the target (mock LLM + reference runtime) on core $TARGET_CORE, all load generation (the
# standalone worker, or the controller and both workers) on core $LOAD_CORE: both modes
# get the same CPU, so the difference is the distributed path's own cost
TARGET_CORE=${TARGET_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
RUST_LOG=warn taskset -c "$TARGET_CORE" "$B" mock-llm --threads 1 --host 127.0.0.1 --port 0 --delay-ms 0 --stream-delay-ms 0 >"$WORK/mock.out" &
PIDS+=($!)
MOCK=$(first_line "$WORK/mock.out")
OPENAI_BASE_URL="http://$MOCK/v1" RUST_LOG=warn taskset -c "$TARGET_CORE" "$B" reference-runtime --threads 1 --host 127.0.0.1 --port 0 >"$WORK/rt.out" &
PIDS+=($!)
URL=$(first_line "$WORK/rt.out")

cat >"$WORK/plan.toml" <<PLAN
name = "overhead"
interval = "1s"
graceful_stop = "5s"
[scenario]
executor = "constant-vus"
vus = $VUS
duration = "${SECS}s"
PLAN

echo "target $URL (core $TARGET_CORE), load on core $LOAD_CORE, plan constant-vus $VUS VUs for ${SECS}s, $ROUNDS rounds, $(nproc) cores"
printf "%-6s %-12s %10s %10s\n" round mode http_reqs req_per_s
for r in $(seq "$ROUNDS"); do
  RUST_LOG=warn taskset -c "$LOAD_CORE" "$B" worker --core "$LOAD_CORE" --standalone --plan "$WORK/plan.toml" --target "$URL" >"$WORK/sa.txt" 2>/dev/null || true
  SA=$(python3 -c "import re,sys; t=open(sys.argv[1]).read(); m=re.search(r'http_reqs[.\s]*:\s*([0-9.]+)', t); print(int(float(m.group(1))))" "$WORK/sa.txt")
  printf "%-6s %-12s %10s %10.1f\n" "$r" standalone "$SA" "$(echo "$SA / $SECS" | bc -l)"
  RUST_LOG=warn taskset -c "$LOAD_CORE" "$B" run --target "$URL" --plan "$WORK/plan.toml" --workers 2 --worker-cores "$LOAD_CORE" --no-progress --results-dir "$WORK/res" >"$WORK/run.txt" 2>/dev/null || true
  D=$(python3 -c "import json,glob; d=json.load(open(glob.glob('$WORK/res/*.summary.json')[0])); print(int(d['metrics']['http_reqs']['count']))")
  printf "%-6s %-12s %10s %10.1f\n" "$r" "ctl+2workers" "$D" "$(echo "$D / $SECS" | bc -l)"
  echo "$SA $D" >>"$WORK/pairs"
done
python3 - "$WORK/pairs" <<'PY'
import sys, statistics
pairs = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
sa = statistics.median(p[0] for p in pairs); d = statistics.median(p[1] for p in pairs)
print(f"median standalone {sa:.0f}, median controller+2 workers {d:.0f}: {100*(d-sa)/sa:+.2f}%")
PY
