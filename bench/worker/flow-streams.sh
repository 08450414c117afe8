#!/usr/bin/env bash
# bench/worker/flow-streams.sh: real `barrage run` workers holding N concurrent agent-like
# streams (issue 15 §2, "its samples stay correct"): every VU runs a one-step flow, a
# streamed chat completion (kind = "sse") against barrage-mock-llm, over and over. The
# mock's schedule is known: the first event after DELAY_MS, then one every STREAM_MS, for
# WORDS chunks. The script reads the run's summary and prints the recorded
# stream_first_event / stream_event_gap percentiles next to that schedule, the workers'
# summed RSS per open stream (against MAX_KIB_PER_VU, default 16: issue 15's bound; the
# script exits 1 when it is over), every process's open-file limit, the connections held
# to the mock over the hold and the loopback listen drops and SYN resends of the run.
#
#   STREAMS=10000 bench/worker/flow-streams.sh
#
# Both sides are split by the open-file limit: K = ceil(STREAMS / PER_PROC) mock processes
# on one port (--reuse-port) and K workers (`barrage run --workers K`, the VUs split
# evenly), the workers leaving from 4·K source addresses 127.0.0.2… (target.source_addrs).
# Mock processes run on CPU $SERVER_CORE, workers on $WORKER_CORES. 127.0.0.x only; the run
# is bounded by its plan (ramp + hold + graceful stop) and by `timeout`; every process is
# ended by PID. Binaries: $CARGO_TARGET_DIR (default target/)/release, built if missing.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BARRAGE="${BARRAGE_BIN:-$TARGET/release/barrage}"
MOCK="${MOCK_BIN:-$TARGET/release/barrage-mock-llm}"
STREAMS="${STREAMS:-10000}"
PER_PROC="${PER_PROC:-15000}"
DELAY_MS="${DELAY_MS:-500}"
STREAM_MS="${STREAM_MS:-2000}"
WORDS="${WORDS:-10}"
RAMP_S="${RAMP_S:-10}"
HOLD_S="${HOLD_S:-60}"
SERVER_CORE="${SERVER_CORE:-1}"
WORKER_CORES="${WORKER_CORES:-0}"
PORT="${PORT:-18611}"
MAX_KIB_PER_VU="${MAX_KIB_PER_VU:-16}"
OUT="$ROOT/bench/out"

die() { echo "flow-streams.sh: $*" >&2; exit 2; }
[[ $STREAMS =~ ^[0-9]+$ && $STREAMS -gt 0 ]] || die "STREAMS=$STREAMS: give a positive count"
for v in DELAY_MS STREAM_MS WORDS RAMP_S HOLD_S PER_PROC; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v=${!v}: give a positive whole number"
done
command -v jq >/dev/null || die "jq not found"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
ulimit -n "$(ulimit -Hn)"
K=$(( (STREAMS + PER_PROC - 1) / PER_PROC ))
(( STREAMS / K + 200 < $(ulimit -n) )) || die "$((STREAMS / K)) streams per process need more than the open-file limit $(ulimit -n): lower PER_PROC"
if [[ ! -x $BARRAGE || ! -x $MOCK ]]; then
  echo "building barrage and barrage-mock-llm (release) into $TARGET" >&2
  (cd "$ROOT" && cargo build --release -p barrage-controller --bin barrage -p barrage-mock-llm --bin barrage-mock-llm >&2)
fi

mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW="$OUT/worker-flow-streams-$STAMP.txt"
WORK=$(mktemp -d /tmp/flow-streams.XXXX)
MOCK_PIDS=()
RUN_PID=""
cleanup() {
  [[ -n $RUN_PID ]] && kill "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null
  local p
  for p in "${MOCK_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${MOCK_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

response=""
for ((i = 0; i < WORDS; i++)); do response+="w$i "; done
for ((i = 0; i < K; i++)); do
  log="$WORK/mock-$i.log"
  RUST_LOG=warn taskset -c "$SERVER_CORE" "$MOCK" --host 127.0.0.1 --port "$PORT" --reuse-port \
    --threads 1 --grace-ms 0 --delay-ms "$DELAY_MS" --stream-delay-ms "$STREAM_MS" \
    --response "${response% }" --call-log-size 0 >"$log" 2>&1 &
  MOCK_PIDS+=($!)
  for _ in $(seq 200); do grep -q '^listening on' "$log" && break; sleep 0.05; done
  grep -q '^listening on' "$log" || die "mock $i did not start: $(cat "$log")"
done

# A stream lasts DELAY + WORDS × STREAM ms (WORDS chunks, then the stop chunk one STREAM
# later and [DONE] with it); the timeout leaves it room.
stream_s=$(( (DELAY_MS + WORDS * STREAM_MS) / 1000 + 1 ))
sources=""
for ((i = 0; i < 4 * K; i++)); do sources+="\"127.0.0.$((2 + i))\", "; done
cat >"$WORK/plan.toml" <<EOF
name = "flow-streams"
interval = "1s"
graceful_stop = "$((stream_s + 10))s"

[target]
url = "http://127.0.0.1:$PORT"
runtime = "mock-llm-streams"
source_addrs = [${sources%, }]

[flow]
name = "llm_stream"
request_timeout = "$((stream_s + 30))s"

[flows.llm_stream]
description = "one streamed chat completion, as an agent's runs/stream holds one"
[[flows.llm_stream.steps]]
name = "chat_stream"
method = "POST"
path = "/v1/chat/completions"
body = '{"model":"mock","stream":true,"messages":[{"role":"user","content":"vu {vu} iteration {iter}"}]}'
kind = "sse"

[scenarios.streams]
executor = "ramping-vus"
start_vus = 0
stages = [
  { duration = "${RAMP_S}s", target = $STREAMS },
  { duration = "${HOLD_S}s", target = $STREAMS },
]
EOF

{
  echo "# barrage workers holding $STREAMS streams, $(date -u)"
  echo "machine: $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "mock: $K process(es) on 127.0.0.1:$PORT (--reuse-port), CPU $SERVER_CORE; first event after $DELAY_MS ms, then one every $STREAM_MS ms, $WORDS chunks (+ the stop chunk and [DONE])"
  echo "workers: $K (barrage run --workers $K, CPUs $WORKER_CORES), $((4 * K)) source addresses; ramp ${RAMP_S}s to $STREAMS VUs, hold ${HOLD_S}s"
  echo "event rate at $STREAMS streams: $(( STREAMS * 1000 / STREAM_MS )) chunks/s"
} | tee "$RAW"

timeout $((RAMP_S + HOLD_S + stream_s + 180)) \
  "$BARRAGE" run --plan "$WORK/plan.toml" --workers "$K" --worker-cores "$WORKER_CORES" \
  --allow-many-workers --results-dir "$WORK" --no-progress --allow-invalid >"$WORK/run.out" 2>"$WORK/run.err" &
RUN_PID=$!

# The workers' RSS: a baseline once they are up (before the ramp opens streams), the
# largest sum during the hold (every VU in a stream but between two of them).
# RUN_PID is `timeout`; its child is `barrage run`, whose children are the workers
# (`barrage worker …`).
worker_pids() { local c g; for c in $(ps -o pid= --ppid "$RUN_PID"); do
  for g in $(ps -o pid= --ppid "$c"); do
    [[ $(tr '\0' ' ' <"/proc/$g/cmdline" 2>/dev/null | cut -d' ' -f2) == worker ]] && echo "$g"
  done; done; }
rss_sum() { local s=0 p; for p in "$@"; do s=$(( s + $(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0) )); done; echo "$s"; }
# The workers' CPU (utime + stime) over the same window: per chunk of the schedule.
cpu_sum() { local s=0 p; for p in "$@"; do s=$(( s + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0) )); done; echo "$s"; }
# Connections held open to the mock (the workers' side, from 127.0.0.x to $PORT), counted
# every few seconds over the same window: the least is how many streams stayed open at once.
held() { ss -Htn state established "( dport = :$PORT )" 2>/dev/null | wc -l; }
# Loopback SYNs the mocks' accept queues dropped, and SYNs resent (the network namespace's
# counters: they include anything else on the host in the same window).
tcp_drops() { nstat -asz TcpExtListenDrops TcpExtTCPSynRetrans 2>/dev/null | awk 'NR > 1 && NF >= 2 { s = s $2 " " } END { print s }'; }
drops_a=$(tcp_drops)
base=""; peak=0; wpids=(); cpu_a=""; cpu_b=""; t_a=""; t_b=""; held_min=""; held_max=0; held_at=0
t0=$(date +%s)
while kill -0 "$RUN_PID" 2>/dev/null; do
  sleep 0.5
  mapfile -t wpids < <(worker_pids)
  (( ${#wpids[@]} == K )) || continue
  now=$(( $(date +%s) - t0 ))
  [[ -z $base ]] && { base=$(rss_sum "${wpids[@]}"); fdl=""; for p in "${wpids[@]}"; do fdl+="$(awk '/^Max open files/ { print $4 }' "/proc/$p/limits"),"; done; }
  if (( now > RAMP_S + stream_s && now < RAMP_S + HOLD_S )); then
    r=$(rss_sum "${wpids[@]}"); (( r > peak )) && peak=$r
    c=$(cpu_sum "${wpids[@]}"); t=$(date +%s.%N)
    [[ -z $cpu_a ]] && { cpu_a=$c; t_a=$t; }
    cpu_b=$c; t_b=$t
    if (( now >= held_at )); then
      h=$(held); held_at=$(( now + 5 ))
      (( h > held_max )) && held_max=$h
      [[ -z $held_min ]] || (( h < held_min )) && held_min=$h
    fi
  fi
done
set +e
wait "$RUN_PID"; code=$?
set -e
RUN_PID=""
summary=$(ls "$WORK"/*.summary.json 2>/dev/null | head -1)
[[ -n $summary ]] || die "no summary (exit $code): $(tail -20 "$WORK/run.err")"
cp "$summary" "$OUT/worker-flow-streams-$STAMP.summary.json"
cp "$WORK/run.err" "$OUT/worker-flow-streams-$STAMP.run.err"
read -r ld_a sr_a <<<"$drops_a"; read -r ld_b sr_b <<<"$(tcp_drops)"
mock_fd=""; for p in "${MOCK_PIDS[@]}"; do mock_fd+="$(awk '/^Max open files/ { print $4 }' "/proc/$p/limits"),"; done

per_vu=$(awk -v a="$peak" -v b="${base:-0}" -v n="$STREAMS" 'BEGIN { printf "%.2f", (a - b) / n }')
cpu_line=$(awk -v a="${cpu_a:-0}" -v b="${cpu_b:-0}" -v ta="${t_a:-0}" -v tb="${t_b:-0}" -v hz="$(getconf CLK_TCK)" \
  -v rate="$(( STREAMS * 1000 / STREAM_MS ))" 'BEGIN { s = (b - a) / hz; w = tb - ta;
  if (w <= 0) { print "n/a (no window)"; exit }
  printf "%.2f s in %.1f s of the hold = %.1f %% of a core, %.1f us per chunk of the schedule", s, w, 100 * s / w, s * 1e6 / (w * rate) }')
verdict=$(awk -v p="$per_vu" -v m="$MAX_KIB_PER_VU" 'BEGIN { print (p <= m) ? "within" : "OVER" }')
m() { jq -r --arg k "$1" --arg f "$2" '.metrics[$k][$f] // "n/a"' "$summary"; }
{
  echo "barrage run exit code: $code; summary: bench/out/worker-flow-streams-$STAMP.summary.json"
  echo "open-file limits: workers ${fdl%,}; mock ${mock_fd%,}"
  echo "worker RSS: ${base:-?} KiB before the ramp -> $peak KiB during the hold = $per_vu KiB per open stream (VU): $verdict the $MAX_KIB_PER_VU KiB target"
  echo "worker CPU: $cpu_line"
  echo "connections held to :$PORT during the hold: ${held_min:-?} least, $held_max most; VUs at most $(jq -r '.metrics.vus.max // "n/a"' "$summary")"
  echo "TCP over the run (whole network namespace): $(( ${ld_b:-0} - ${ld_a:-0} )) listen drops, $(( ${sr_b:-0} - ${sr_a:-0} )) SYN retransmits"
  echo "| metric | schedule | p50 | p90 | p99 | max | count |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  echo "| stream_first_event (ms) | $DELAY_MS | $(m stream_first_event med) | $(m stream_first_event p90) | $(m stream_first_event p99) | $(m stream_first_event max) | $(m stream_first_event count) |"
  echo "| stream_event_gap (ms) | $STREAM_MS | $(m stream_event_gap med) | $(m stream_event_gap p90) | $(m stream_event_gap p99) | $(m stream_event_gap max) | $(m stream_event_gap count) |"
  echo "| stream_events | $((WORDS + 2)) | $(m stream_events med) | | | $(m stream_events max) | $(m stream_events count) |"
  # By the stage a stream ended in: the streams that opened their connection in the ramp
  # end in the plateau, every VU's last stream in the stop.
  jq -r '.stages[] | select(.metrics.stream_first_event != null) | .kind as $k | .metrics as $m
    | "| \($k): first event / gap (ms) | | \($m.stream_first_event.med) / \($m.stream_event_gap.med) | \($m.stream_first_event.p90) / \($m.stream_event_gap.p90) | \($m.stream_first_event.p99) / \($m.stream_event_gap.p99) | \($m.stream_first_event.max) / \($m.stream_event_gap.max) | \($m.stream_first_event.count) |"' "$summary"
  echo "| http_req_failed (rate) | 0 | $(jq -r '.metrics.http_req_failed.rate // "n/a"' "$summary") | | | | |"
  echo "validity: $(jq -r '.validity | if type == "object" then (.verdict // .status // "n/a") else tostring end' "$summary"); load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$RAW"
[[ $verdict == within ]] || exit 1
