#!/usr/bin/env bash
# bench/mock-llm/run.sh: barrage-mock-llm (release) against the Bun anchor, side by side.
#
# Each server is pinned to CPU $SERVER_CORE (default 1), wrk to CPU $GEN_CORE (default 0), all
# traffic on 127.0.0.1. Every wrk run lasts $DURATION (default 10s); every scenario starts a
# fresh server, which is killed by PID afterwards (and on exit, by the trap).
#
#   1. zero delays, non-streaming, 50 keep-alive connections: req/s, server CPU µs/request;
#      also for `floor` (bench/mock-llm/tcp_floor.rs: replays one captured answer of
#      barrage-mock-llm, no HTTP work beyond finding a request's end, no JSON, one recv +
#      one send per request), the
#      kernel's loopback cost that no server can go below on this machine
#   2. default delays (10/5), streaming, 500 concurrent streams: p99 vs the ideal 220 ms,
#      server CPU µs/stream, RSS (VmRSS, VmHWM)
#   3. the largest stream count (100, 250, 500, 1000, 2000, ... up to $MAX_STREAMS) whose p99 stays
#      within 10 % of the ideal, with the server's and wrk's CPU share at each step
#
# Needs: wrk (apt-get install -y wrk), taskset, curl, npm (to install Bun once into
# bench/.tools/mock-llm-bun, a git-ignored copy of shared/anchors/mock-llm-bun).
# Servers and wrk run at `nice -n $NICE` (default -10, needs root; 0 to disable), so that other
# work on a shared machine disturbs the figures less.
# Output: a human-readable report on stdout; raw lines also in bench/out/mock-llm-*.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/bench/mock-llm"
ANCHOR_SRC="${ANCHOR_SRC:-$ROOT/../shared/anchors/mock-llm-bun}"
BUN_DIR="$ROOT/bench/.tools/mock-llm-bun"
BIN="$ROOT/target/release/barrage-mock-llm"
FLOOR_BIN="$ROOT/target/release/examples/tcp_floor"
OUT="$ROOT/bench/out"
SERVER_CORE="${SERVER_CORE:-1}"
GEN_CORE="${GEN_CORE:-0}"
DURATION="${DURATION:-10s}"
MAX_STREAMS="${MAX_STREAMS:-8000}"
PORT_BARRAGE="${PORT_BARRAGE:-18501}"
PORT_BUN="${PORT_BUN:-18502}"
PORT_FLOOR="${PORT_FLOOR:-18503}"
NICE="${NICE:--10}"   # priority of servers and wrk over other work on a shared machine
IDEAL_MS=220   # 10 ms + 42 chunks x 5 ms
TICK=$(getconf CLK_TCK)

mkdir -p "$OUT"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
RAW="$OUT/mock-llm-$stamp.txt"

die() { echo "run.sh: $*" >&2; exit 2; }
command -v wrk >/dev/null || die "wrk not found: apt-get install -y wrk"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v curl >/dev/null || die "curl not found"
ulimit -n 20000 2>/dev/null || true
nice -n "$NICE" true 2>/dev/null || NICE=0
PRIO=(nice -n "$NICE")

# --- servers -----------------------------------------------------------------------------

SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap cleanup EXIT INT TERM

echo "building barrage-mock-llm (release)" >&2
(cd "$ROOT" && cargo build --release -p barrage-mock-llm >&2 && cargo build --release -p barrage-mock-llm --example tcp_floor >&2)

if [[ ! -x "$BUN_DIR/node_modules/.bin/bun" ]]; then
  [[ -d "$ANCHOR_SRC" ]] || die "Bun anchor not found at $ANCHOR_SRC (set ANCHOR_SRC)"
  mkdir -p "$BUN_DIR"
  cp "$ANCHOR_SRC"/{server.ts,run.sh,package.json,package-lock.json,README.md} "$BUN_DIR/"
  chmod -R u+w "$BUN_DIR"
  echo "installing Bun into $BUN_DIR (npm, once)" >&2
  (cd "$BUN_DIR" && npm install --no-audit --no-fund --silent >&2)
fi
BUN_VERSION=$("$BUN_DIR/node_modules/.bin/bun" --version)

# start NAME DELAY STREAM_DELAY: starts a fresh server pinned to SERVER_CORE, sets SERVER_PID
# and PORT, and waits for /health.
start() {
  local name=$1 delay=$2 sdelay=$3
  cleanup
  case "$name" in
    barrage)
      PORT=$PORT_BARRAGE
      RUST_LOG=warn "${PRIO[@]}" taskset -c "$SERVER_CORE" "$BIN" --host 127.0.0.1 --port "$PORT" \
        --threads 1 --delay-ms "$delay" --stream-delay-ms "$sdelay" >/dev/null 2>>"$RAW" &
      ;;
    floor)
      PORT=$PORT_FLOOR
      "${PRIO[@]}" taskset -c "$SERVER_CORE" "$FLOOR_BIN" "$PORT" "$FLOOR_RESPONSE" >/dev/null 2>>"$RAW" &
      ;;
    bun)
      PORT=$PORT_BUN
      MOCK_LLM_PORT=$PORT MOCK_LLM_DELAY_MS=$delay MOCK_LLM_STREAM_DELAY_MS=$sdelay \
        "${PRIO[@]}" "$BUN_DIR/run.sh" "$SERVER_CORE" >/dev/null 2>>"$RAW" &
      ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || die "$name server exited at start (see $RAW)"
    sleep 0.05
  done
  die "$name server did not answer /health within 10 s"
}

# utime + stime of PID, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# VmRSS / VmHWM of PID, in MB.
rss_mb() { awk -v k="$2:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

LUA_PLAIN="$OUT/mock-llm-plain.lua"
LUA_STREAM="$OUT/mock-llm-stream.lua"
BODY_MSGS='"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say something nice about benchmarks."}]'
cat >"$LUA_PLAIN" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-gpt-4o",$BODY_MSGS}'
EOF
cat >"$LUA_STREAM" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-gpt-4o","stream":true,"stream_options":{"include_usage":true},$BODY_MSGS}'
EOF

# load NAME LUA CONNECTIONS: one wrk run against the current server. Sets REQS, RPS, P99_MS,
# ERRS, SRV_US (server CPU µs per completed request), SRV_PCT, GEN_PCT, RSS, HWM.
load() {
  local name=$1 lua=$2 conns=$3 out t0 t1 w0 w1 secs
  t0=$(cpu_ticks "$SERVER_PID")
  w0=$(date +%s.%N)
  out=$( { "${PRIO[@]}" /usr/bin/time -f 'GENCPU %U %S' taskset -c "$GEN_CORE" \
    wrk -t1 -c"$conns" -d"$DURATION" --timeout 5s --latency -s "$lua" \
    "http://127.0.0.1:$PORT/v1/chat/completions"; } 2>&1)
  w1=$(date +%s.%N)
  t1=$(cpu_ticks "$SERVER_PID")
  { echo "=== $name $(basename "$lua") c=$conns load=$(cut -d' ' -f1 /proc/loadavg)"; echo "$out"; } >>"$RAW"
  secs=$(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')
  REQS=$(awk '/requests in/ { print $1 }' <<<"$out")
  RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
  P99_MS=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
    printf "%.1f", v }' <<<"$out")
  ERRS=$(awk '/Socket errors|Non-2xx/ { print }' <<<"$out" | tr '\n' ' ')
  SRV_US=$(awk -v d="$((t1 - t0))" -v n="${REQS:-0}" -v hz="$TICK" \
    'BEGIN { if (n > 0) printf "%.1f", d / hz * 1e6 / n; else print "n/a" }')
  SRV_PCT=$(awk -v d="$((t1 - t0))" -v s="$secs" -v hz="$TICK" 'BEGIN { printf "%.0f", d / hz / s * 100 }')
  GEN_PCT=$(awk -v s="$secs" '/^GENCPU/ { printf "%.0f", ($2 + $3) / s * 100 }' <<<"$out")
  RSS=$(rss_mb "$SERVER_PID" VmRSS)
  HWM=$(rss_mb "$SERVER_PID" VmHWM)
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

{
  echo "# mock LLM benchmark, $(date -u)"
  echo "machine: $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "server CPU $SERVER_CORE, wrk CPU $GEN_CORE, wrk -t1 -d$DURATION, nice $NICE, Bun $BUN_VERSION, barrage-mock-llm --threads 1"
  echo
  echo "## 1. zero delays, non-streaming, 50 connections"
  echo "| server | req/s | server CPU µs/req | server CPU % | wrk CPU % | p99 ms | errors |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} | tee -a "$RAW"

FLOOR_RESPONSE="$OUT/mock-llm-floor-response.http"
declare -A Z_RPS Z_US
for name in barrage bun floor; do
  start "$name" 0 0
  if [[ $name == barrage ]]; then # the floor replays this exact answer, head and body
    curl -s -i -H 'Content-Type: application/json' \
      -d "{\"model\":\"mock-gpt-4o\",$BODY_MSGS}" \
      "http://127.0.0.1:$PORT/v1/chat/completions" >"$FLOOR_RESPONSE"
  fi
  DURATION=3s load "$name" "$LUA_PLAIN" 50 # warm-up (JIT, allocator)
  load "$name" "$LUA_PLAIN" 50
  Z_RPS[$name]=$RPS; Z_US[$name]=$SRV_US
  echo "| $name | $RPS | $SRV_US | $SRV_PCT | $GEN_PCT | $P99_MS | ${ERRS:-none} |" | tee -a "$RAW"
  cleanup
done
echo "ratio barrage/bun: req/s $(ratio "${Z_RPS[barrage]}" "${Z_RPS[bun]}"), CPU/req $(ratio "${Z_US[barrage]}" "${Z_US[bun]}")" | tee -a "$RAW"
above() { awk -v a="$1" -v f="$2" 'BEGIN { printf "%.1f", a - f }'; }
echo "floor (kernel only): $(ratio "${Z_US[floor]}" "${Z_US[bun]}") of bun's CPU/req; above the floor: barrage $(above "${Z_US[barrage]}" "${Z_US[floor]}") µs, bun $(above "${Z_US[bun]}" "${Z_US[floor]}") µs, ratio $(ratio "$(above "${Z_US[barrage]}" "${Z_US[floor]}")" "$(above "${Z_US[bun]}" "${Z_US[floor]}")")" | tee -a "$RAW"

{
  echo
  echo "## 2. default delays (10/5), streaming with usage, 500 concurrent streams (ideal $IDEAL_MS ms)"
  echo "| server | streams/s | p99 ms | p99 / ideal | server CPU µs/stream | server CPU % | wrk CPU % | VmRSS MB | VmHWM MB | errors |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
} | tee -a "$RAW"
declare -A S_US S_P99
for name in barrage bun; do
  start "$name" 10 5
  load "$name" "$LUA_STREAM" 500
  S_US[$name]=$SRV_US; S_P99[$name]=$P99_MS
  echo "| $name | $RPS | $P99_MS | $(ratio "$P99_MS" "$IDEAL_MS") | $SRV_US | $SRV_PCT | $GEN_PCT | $RSS | $HWM | ${ERRS:-none} |" | tee -a "$RAW"
  cleanup
done
echo "ratio barrage/bun: CPU/stream $(ratio "${S_US[barrage]}" "${S_US[bun]}"), p99 $(ratio "${S_P99[barrage]}" "${S_P99[bun]}")" | tee -a "$RAW"

{
  echo
  echo "## 3. stream-count sweep, default delays: largest count with p99 <= 1.1 x $IDEAL_MS ms"
  echo "| server | streams | streams/s (ideal) | p99 ms | p99 / ideal | server CPU % | wrk CPU % | VmHWM MB | errors |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
} | tee -a "$RAW"
for name in barrage bun; do
  best=none
  for n in 100 250 500 1000 2000 4000 8000 16000; do
    ((n <= MAX_STREAMS)) || break
    start "$name" 10 5
    load "$name" "$LUA_STREAM" "$n"
    ideal_rate=$(awk -v n="$n" -v i="$IDEAL_MS" 'BEGIN { printf "%.0f", n * 1000 / i }')
    echo "| $name | $n | $RPS ($ideal_rate) | $P99_MS | $(ratio "$P99_MS" "$IDEAL_MS") | $SRV_PCT | $GEN_PCT | $HWM | ${ERRS:-none} |" | tee -a "$RAW"
    cleanup
    if awk -v p="$P99_MS" -v i="$IDEAL_MS" 'BEGIN { exit !(p > 0 && p <= 1.1 * i) }' && [[ -z "$ERRS" ]]; then
      best=$n
    else
      break
    fi
  done
  echo "$name: largest stream count within 10 % of ideal: $best" | tee -a "$RAW"
done
echo
echo "raw wrk output: $RAW"
