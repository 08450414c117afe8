#!/usr/bin/env bash
# bench/mock-llm/scale.sh: barrage-mock-llm at scale (issue 15 §2/§3, the mock's side),
# this build side by side with the previous one ("before": main's mock, built once into
# /tmp/mock-before by this script from `git archive $BEFORE_REF`, sharing target/ so only
# the workspace crates compile).
#
#   1. N concurrent slow streams ($COUNTS: N:INTERVAL_MS pairs, default 10000:1000
#      30000:3000 50000:5000, i.e. 10,000 chunks/s at every count): one chunk every
#      INTERVAL_MS for $WORDS words (default 20), opened at $OPEN_PER_S (default 5000/s).
#      A process holds one open file per stream and its limit is its own, so a count is
#      split over K = ceil(N / $PER_PROC) (default 15000) mock processes sharing one port
#      (--reuse-port) and K client processes, each client leaving from its own 4 source
#      addresses (127.0.0.2...). Reports chunk lateness (% of the interval: p50/p99/max,
#      over every chunk of every client), the servers' RSS per open stream (summed over
#      the K processes) and the clients', the servers' CPU per chunk, and every process's
#      open-file limit. The before build has no --reuse-port: it runs a count only where
#      one process can hold it.
#   2. Large requests: 1 KB, 100 KB, 500 KB bodies, non-streamed, zero delays, 20 keep-alive
#      connections (more requests for smaller bodies: CPU is read in 10 ms ticks): server CPU
#      per request, and its ratio to the 1 KB one; beside it the kernel's floor (tcp_floor.rs,
#      the mock-llm crate's example: the same bytes received and the mock's answer sent back
#      over loopback TCP, no HTTP/JSON work), and the ratio of (mock - floor) to the 1 KB
#      (mock - floor): the work the mock adds on top of the bytes. $ROUNDS rounds (default 3),
#      the servers ($PART2_BUILDS, default "before after", and the floor) alternating their
#      order per round; medians.
#   3. Long answers: 42-word and 2,000-word streams at 5 ms per chunk, 50 at once: server CPU
#      per chunk and the ratio.
#
# The server runs with --threads 1 pinned to CPU $SERVER_CORE (default 1), the client
# (target/release/examples/streams, one thread) to CPU $GEN_CORE (default 0). 127.0.0.x only;
# every run is bounded by --deadline-s; each server is killed by PID (also by the trap).
# Raises the open-file limit to $NOFILE (default 1048576; the hard limit too, which needs
# CAP_SYS_RESOURCE); where it cannot, counts above the limit are reported as skipped.
# Output: a report on stdout; raw lines in bench/out/mock-llm-scale-*.txt.
# AFTER_BIN overrides this build's server; BODIES (part 2's sizes) and LONG_ANSWERS=0 (part 3
# without the 2,000-word streams) shorten a run, e.g. for alternating before/after rounds:
#   for r in 1 2 3; do BUILD=0 BEFORE_BIN=… AFTER_BIN=… COUNTS=10000:1000 BODIES=1000 \
#     LONG_ANSWERS=0 bench/mock-llm/scale.sh; done
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/bench/out"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
AFTER="${AFTER_BIN:-$TARGET/release/barrage-mock-llm}"
CLIENT="$TARGET/release/examples/streams"
FLOOR="$TARGET/release/examples/tcp_floor"
BEFORE="${BEFORE_BIN:-/tmp/mock-before/barrage-mock-llm}"
BEFORE_REF="${BEFORE_REF:-main}"
COUNTS="${COUNTS:-10000:1000 30000:3000 50000:5000}"
INTERVAL_MS="${INTERVAL_MS:-1000}"   # for counts given without one
PER_PROC="${PER_PROC:-15000}"       # streams per process (each side), under its open-file limit
WORDS="${WORDS:-20}"
OPEN_PER_S="${OPEN_PER_S:-5000}"
REPEAT="${REPEAT:-50}"
SERVER_CORE="${SERVER_CORE:-1}"
GEN_CORE="${GEN_CORE:-0}"
NOFILE="${NOFILE:-1048576}"
PORT="${PORT:-18511}"
SECTIONS="${SECTIONS:-1 2 3}"   # which of the three parts to run
BODIES="${BODIES:-1000 100000 500000}"   # part 2's body sizes (the first is the ratios' base)
ROUNDS="${ROUNDS:-3}"   # part 2's rounds (builds alternating; medians)
PART2_BUILDS="${PART2_BUILDS:-before after}"   # part 2's servers besides the floor
LONG_ANSWERS="${LONG_ANSWERS:-1}"   # part 3: 0 runs the 42-word streams only
# BUILD=0: use the binaries already in the target directory (no cargo run).

mkdir -p "$OUT"
RAW="$OUT/mock-llm-scale-$(date -u +%Y%m%dT%H%M%SZ).txt"
FLOOR_RESPONSE="$OUT/mock-llm-scale-floor-response.http"
die() { echo "scale.sh: $*" >&2; exit 2; }
command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v curl >/dev/null || die "curl not found"
# Raise the open-file limit (hard too, which needs CAP_SYS_RESOURCE); else up to the hard one.
ulimit -Hn "$NOFILE" 2>/dev/null || true
ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE_GOT=$(ulimit -n)

if [[ ${BUILD:-1} == 1 ]]; then
echo "building barrage-mock-llm and the streams client (release)" >&2
# One invocation for both: built apart, the example's dev-dependencies would change the
# features of the shared dependencies and rebuild them each time.
(cd "$ROOT" && cargo build --release -p barrage-mock-llm --bin barrage-mock-llm --example streams --example tcp_floor >&2)
fi
[[ -x $AFTER && -x $CLIENT && -x $FLOOR ]] || die "$AFTER, $CLIENT or $FLOOR missing: run with BUILD=1"
# The before build is needed by parts 1 and 3, and by part 2 if PART2_BUILDS names it.
NEED_BEFORE=0
[[ " $SECTIONS " == *" 1 "* || " $SECTIONS " == *" 3 "* || " $PART2_BUILDS " == *" before "* ]] && NEED_BEFORE=1
if [[ $NEED_BEFORE == 1 && ! -x "$BEFORE" ]]; then
  src=$(mktemp -d /tmp/mock-before-src.XXXX)
  echo "building the before build ($BEFORE_REF) in $src" >&2
  git -C "$ROOT" archive "$BEFORE_REF" | tar -x -C "$src"
  (cd "$src" && CARGO_TARGET_DIR="$TARGET" cargo build --release -p barrage-mock-llm --bin barrage-mock-llm >&2)
  mkdir -p "$(dirname "$BEFORE")"
  cp "$TARGET/release/barrage-mock-llm" "$BEFORE"
  rm -rf "$src"
  # The shared target/ now holds main's binary: build ours again (only the link step).
  (cd "$ROOT" && touch mock-llm/src/main.rs && cargo build --release -p barrage-mock-llm --bin barrage-mock-llm --example streams --example tcp_floor >&2)
fi

SERVER_PIDS=()
cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVER_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  SERVER_PIDS=()
}
trap cleanup EXIT INT TERM

# start K BIN ARGS...: K fresh servers on $PORT pinned to SERVER_CORE (K > 1: all with
# --reuse-port, one address); waits until each prints its address, then for /health.
start() {
  local k=$1 bin=$2 i pid log
  shift 2
  cleanup
  local extra=()
  (( k > 1 )) && extra=(--reuse-port)
  for ((i = 0; i < k; i++)); do
    log=$(mktemp /tmp/scale-server.XXXX)
    RUST_LOG=warn taskset -c "$SERVER_CORE" "$bin" --host 127.0.0.1 --port "$PORT" --threads 1 \
      --grace-ms 0 "${extra[@]}" "$@" >"$log" 2>>"$RAW" &
    pid=$!
    SERVER_PIDS+=("$pid")
    for _ in $(seq 200); do
      grep -q '^listening on' "$log" && break
      kill -0 "$pid" 2>/dev/null || { rm -f "$log"; die "server $((i + 1))/$k exited at start (see $RAW)"; }
      sleep 0.05
    done
    grep -q '^listening on' "$log" || { rm -f "$log"; die "server $((i + 1))/$k did not listen within 10 s"; }
    rm -f "$log"
  done
  wait_health server
}

# wait_health NAME: until $PORT answers /health (10 s), while the first server lives.
wait_health() {
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
    kill -0 "${SERVER_PIDS[0]}" 2>/dev/null || die "$1 exited at start (see $RAW)"
    sleep 0.05
  done
  die "$1 did not answer /health within 10 s"
}

# client ARGS...: runs the streams client against the current server; sets R (the RESULT line).
client() {
  local out
  out=$(taskset -c "$GEN_CORE" "$CLIENT" --addr "127.0.0.1:$PORT" --pid "$(IFS=,; echo "${SERVER_PIDS[*]}")" "$@")
  echo "$out" >>"$RAW"
  R=$(grep '^RESULT ' <<<"$out")
}
# f KEY: a field of R.
f() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$R"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# median V...: the middle value (the lower of the two middle ones for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# start_floor: the kernel's floor server (tcp_floor.rs, replaying $FLOOR_RESPONSE) on $PORT,
# pinned like the mock; waits until it answers.
start_floor() {
  cleanup
  taskset -c "$SERVER_CORE" "$FLOOR" "$PORT" "$FLOOR_RESPONSE" >/dev/null 2>>"$RAW" &
  SERVER_PIDS+=("$!")
  wait_health tcp_floor
}

words() { local n=$1 s="" i; for ((i = 0; i < n; i++)); do s+="w$i "; done; echo "${s% }"; }
RESPONSE=$(words "$WORDS")
LONG=$(words 2000)

{
  echo "# mock LLM at scale, $(date -u)"
  echo "machine: $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg); open files: $(ulimit -n)"
  echo "server --threads 1 on CPU $SERVER_CORE, client (one thread) on CPU $GEN_CORE; before = $BEFORE_REF ($BEFORE)"
  echo
  echo "## 1. concurrent streams: $WORDS chunks each, opened at $OPEN_PER_S/s; K = ceil(streams / $PER_PROC) processes on each side"
  echo "| build | streams | chunk every | chunks/s | K mock / client procs | held at once | errors | late p50 % | late p99 % | late max % | late p99 ms | mock RSS/stream KiB | client RSS/stream KiB | mock VmHWM MB | mock CPU µs/chunk | open-file limits mock; client |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
} | tee -a "$RAW"
[[ " $SECTIONS " == *" 1 "* ]] || COUNTS=""
for spec in $COUNTS; do
  n=${spec%%:*} iv=$INTERVAL_MS
  [[ $spec == *:* ]] && iv=${spec#*:}
  k=$(( (n + PER_PROC - 1) / PER_PROC ))
  if (( (n + k - 1) / k + 100 > NOFILE_GOT )); then
    echo "| (skipped) | $n | | | $k | needs $(( (n + k - 1) / k )) open files per process; the limit here is $NOFILE_GOT: lower PER_PROC | | | | | | | | | | |" | tee -a "$RAW"
    continue
  fi
  rate=$(( n * 1000 / iv ))
  deadline=$(( n / OPEN_PER_S + WORDS * iv / 1000 + 60 ))
  for build in before after; do
    bin=$AFTER
    if [[ $build == before ]]; then
      bin=$BEFORE
      if (( k > 1 || n + 100 > NOFILE_GOT )); then
        echo "| before | $n | $iv ms | $rate | - | cannot: needs $k processes on one port (one holds at most $NOFILE_GOT open files) and the before build has no --reuse-port | | | | | | | | | | |" | tee -a "$RAW"
        continue
      fi
    fi
    start "$k" "$bin" --delay-ms 0 --stream-delay-ms "$iv" --response "$RESPONSE" --max-body-bytes 1048576
    client --streams "$n" --interval-ms "$iv" --open-per-s "$OPEN_PER_S" --procs "$k" --sources 4 --deadline-s "$deadline"
    echo "| $build | $n | $iv ms | $rate | $k / $k | $(f peak_open) | $(f errors) | $(f late_p50_pct) | $(f late_p99_pct) | $(f late_max_pct) | $(f late_p99_ms) | $(f rss_per_stream_kb) | $(f client_rss_per_stream_kb) | $(f hwm_mb) | $(f cpu_us_per_frame) | $(f server_fd_limits); $(f client_fd_limits) |" | tee -a "$RAW"
    cleanup
  done
done

{
  echo
  echo "## 2. large requests, non-streamed, zero delays: 20 connections (1 KB: 20 x $((REPEAT * 20)), 100 KB: 20 x $((REPEAT * 2)), 500 KB: 20 x $REPEAT requests); $ROUNDS rounds, builds alternating, medians"
  echo "floor = tcp_floor.rs replaying the mock's answer: the same bytes received and answered over loopback TCP with no HTTP/JSON work"
  echo "| build | body | requests/round | errors | CPU µs/request (rounds) | median | ratio to 1 KB | floor µs/request | above floor µs | above floor, ratio to 1 KB | p50 ms | p99 ms |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
} | tee -a "$RAW"
if [[ " $SECTIONS " == *" 2 "* ]]; then
  # The floor replays the mock's own answer to a small request (head and body).
  start 1 "$AFTER" --delay-ms 0 --stream-delay-ms 0
  curl -s -i -H 'Content-Type: application/json' \
    -d '{"model":"mock-gpt-4o","messages":[{"role":"user","content":"Say something nice."}]}' \
    "http://127.0.0.1:$PORT/v1/chat/completions" >"$FLOOR_RESPONSE"
  cleanup
  declare -A US ERRS REQS P50 P99
  builds2=($PART2_BUILDS floor)
  for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < ${#builds2[@]}; i++)); do
      build=${builds2[(i + r) % ${#builds2[@]}]}
      for bytes in $BODIES; do
        # CPU is read in 10 ms ticks: small bodies need many requests for a usable figure.
        case $bytes in
          1000) repeat=$((REPEAT * 20)) ;;
          100000) repeat=$((REPEAT * 2)) ;;
          *) repeat=$REPEAT ;;
        esac
        case $build in
          floor) start_floor ;;
          before) start 1 "$BEFORE" --delay-ms 0 --stream-delay-ms 0 --max-body-bytes 1048576 ;;
          *) start 1 "$AFTER" --delay-ms 0 --stream-delay-ms 0 --max-body-bytes 1048576 ;;
        esac
        client --streams 20 --repeat "$repeat" --stream false --body-bytes "$bytes" --interval-ms 1 --deadline-s 120
        k="$build $bytes"
        US[$k]+=" $(f cpu_us_per_req)"
        ERRS[$k]=$(( ${ERRS[$k]:-0} + $(f errors) ))
        REQS[$k]=$(f requests) P50[$k]=$(f total_p50_ms) P99[$k]=$(f total_p99_ms)
        echo "round $((r + 1)) $build $bytes: $(f requests) requests, $(f errors) errors, $(f cpu_us_per_req) µs/request, load $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RAW" >&2
        cleanup
      done
    done
  done
  small=${BODIES%% *}
  floor_small=$(median ${US[floor $small]})
  for build in "${builds2[@]}"; do
    base=$(median ${US[$build $small]})
    for bytes in $BODIES; do
      k="$build $bytes"
      us=$(median ${US[$k]})
      fl=$(median ${US[floor $bytes]})
      above=$(awk -v a="$us" -v b="$fl" 'BEGIN { printf "%.1f", a - b }')
      above_small=$(awk -v a="$base" -v b="$floor_small" 'BEGIN { printf "%.1f", a - b }')
      if [[ $build == floor ]]; then above="-" above_ratio="-"; else above_ratio=$(ratio "$above" "$above_small"); fi
      echo "| $build | $bytes | ${REQS[$k]} | ${ERRS[$k]} |${US[$k]} | $us | $(ratio "$us" "$base") | $fl | $above | $above_ratio | ${P50[$k]} | ${P99[$k]} |" | tee -a "$RAW"
    done
  done
fi

{
  echo
  echo "## 3. long answers: 50 concurrent streams, 5 ms per chunk (42 words: 20 in a row per connection)"
  echo "| build | chunks/stream | frames | errors | CPU µs/chunk | ratio to 42 | late p99 % |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} | tee -a "$RAW"
[[ " $SECTIONS " == *" 3 "* ]] && for build in before after; do
  bin=$AFTER; [[ $build == before ]] && bin=$BEFORE
  start 1 "$bin" --delay-ms 0 --stream-delay-ms 5
  client --streams 50 --repeat 20 --interval-ms 5 --deadline-s 60
  small=$(f cpu_us_per_frame)
  echo "| $build | 42 | $(f frames) | $(f errors) | $small | 1.00 | $(f late_p99_pct) |" | tee -a "$RAW"
  [[ $LONG_ANSWERS == 1 ]] || { cleanup; continue; }
  start 1 "$bin" --delay-ms 0 --stream-delay-ms 5 --response "$LONG"
  client --streams 50 --interval-ms 5 --deadline-s 60
  echo "| $build | 2000 | $(f frames) | $(f errors) | $(f cpu_us_per_frame) | $(ratio "$(f cpu_us_per_frame)" "$small") | $(f late_p99_pct) |" | tee -a "$RAW"
  cleanup
done
echo
echo "raw output: $RAW; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
