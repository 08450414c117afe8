#!/usr/bin/env bash
# bench/mock-llm/scale.sh: barrage-mock-llm at scale (issue 15 §2/§3, the mock's side),
# this build side by side with the previous one ("before": main's mock, built once into
# /tmp/mock-before by this script from `git archive $BEFORE_REF`, sharing target/ so only
# the workspace crates compile).
#
#   1. N concurrent slow streams (N in $COUNTS, default 10000 30000 50000): one chunk every
#      $INTERVAL_MS (default 1000) for $WORDS words (default 20), opened at $OPEN_PER_S
#      (default 5000/s) from 127.0.0.2..127.0.0.5. Reports chunk lateness (% of the interval:
#      p50/p99/max), the server's RSS per open stream, its CPU per chunk.
#   2. Large requests: 1 KB, 100 KB, 500 KB bodies, non-streamed, zero delays, 20 keep-alive
#      connections (more requests for smaller bodies: CPU is read in 10 ms ticks): server CPU
#      per request, and its ratio to the 1 KB one.
#   3. Long answers: 42-word and 2,000-word streams at 5 ms per chunk, 50 at once: server CPU
#      per chunk and the ratio.
#
# The server runs with --threads 1 pinned to CPU $SERVER_CORE (default 1), the client
# (target/release/examples/streams, one thread) to CPU $GEN_CORE (default 0). 127.0.0.x only;
# every run is bounded by --deadline-s; each server is killed by PID (also by the trap).
# Raises the open-file limit to $NOFILE (default 1048576; the hard limit too, which needs
# CAP_SYS_RESOURCE); where it cannot, counts above the limit are reported as skipped.
# Output: a report on stdout; raw lines in bench/out/mock-llm-scale-*.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/bench/out"
AFTER="$ROOT/target/release/barrage-mock-llm"
CLIENT="$ROOT/target/release/examples/streams"
BEFORE="${BEFORE_BIN:-/tmp/mock-before/barrage-mock-llm}"
BEFORE_REF="${BEFORE_REF:-main}"
COUNTS="${COUNTS:-10000 30000 50000}"
INTERVAL_MS="${INTERVAL_MS:-1000}"
WORDS="${WORDS:-20}"
OPEN_PER_S="${OPEN_PER_S:-5000}"
REPEAT="${REPEAT:-50}"
SERVER_CORE="${SERVER_CORE:-1}"
GEN_CORE="${GEN_CORE:-0}"
NOFILE="${NOFILE:-1048576}"
PORT="${PORT:-18511}"
SECTIONS="${SECTIONS:-1 2 3}"   # which of the three parts to run

mkdir -p "$OUT"
RAW="$OUT/mock-llm-scale-$(date -u +%Y%m%dT%H%M%SZ).txt"
die() { echo "scale.sh: $*" >&2; exit 2; }
command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v curl >/dev/null || die "curl not found"
# Raise the open-file limit (hard too, which needs CAP_SYS_RESOURCE); else up to the hard one.
ulimit -Hn "$NOFILE" 2>/dev/null || true
ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE_GOT=$(ulimit -n)

echo "building barrage-mock-llm and the streams client (release)" >&2
(cd "$ROOT" && cargo build --release -p barrage-mock-llm --bin barrage-mock-llm >&2 \
  && cargo build --release -p barrage-mock-llm --example streams >&2)
if [[ ! -x "$BEFORE" ]]; then
  src=$(mktemp -d /tmp/mock-before-src.XXXX)
  echo "building the before build ($BEFORE_REF) in $src" >&2
  git -C "$ROOT" archive "$BEFORE_REF" | tar -x -C "$src"
  (cd "$src" && CARGO_TARGET_DIR="$ROOT/target" cargo build --release -p barrage-mock-llm --bin barrage-mock-llm >&2)
  mkdir -p "$(dirname "$BEFORE")"
  cp "$ROOT/target/release/barrage-mock-llm" "$BEFORE"
  rm -rf "$src"
  # The shared target/ now holds main's binary: build ours again (only the link step).
  (cd "$ROOT" && touch mock-llm/src/main.rs && cargo build --release -p barrage-mock-llm --bin barrage-mock-llm >&2)
fi

SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap cleanup EXIT INT TERM

# start BIN ARGS...: a fresh server on $PORT pinned to SERVER_CORE; waits for /health.
start() {
  local bin=$1
  shift
  cleanup
  RUST_LOG=warn taskset -c "$SERVER_CORE" "$bin" --host 127.0.0.1 --port "$PORT" --threads 1 \
    --grace-ms 0 "$@" >/dev/null 2>>"$RAW" &
  SERVER_PID=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || die "server exited at start (see $RAW)"
    sleep 0.05
  done
  die "server did not answer /health within 10 s"
}

# client ARGS...: runs the streams client against the current server; sets R (the RESULT line).
client() {
  local out
  out=$(taskset -c "$GEN_CORE" "$CLIENT" --addr "127.0.0.1:$PORT" --pid "$SERVER_PID" "$@")
  echo "$out" >>"$RAW"
  R=$(grep '^RESULT ' <<<"$out")
}
# f KEY: a field of R.
f() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$R"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

words() { local n=$1 s="" i; for ((i = 0; i < n; i++)); do s+="w$i "; done; echo "${s% }"; }
RESPONSE=$(words "$WORDS")
LONG=$(words 2000)

{
  echo "# mock LLM at scale, $(date -u)"
  echo "machine: $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg); open files: $(ulimit -n)"
  echo "server --threads 1 on CPU $SERVER_CORE, client (one thread) on CPU $GEN_CORE; before = $BEFORE_REF ($BEFORE)"
  echo
  echo "## 1. concurrent streams: $WORDS chunks, one per $INTERVAL_MS ms, opened at $OPEN_PER_S/s"
  echo "| build | streams | held at once | errors | late p50 % | late p99 % | late max % | RSS/stream KiB | VmHWM MB | CPU µs/chunk |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
} | tee -a "$RAW"
[[ " $SECTIONS " == *" 1 "* ]] || COUNTS=""
for n in $COUNTS; do
  if (( n + 100 > NOFILE_GOT )); then
    echo "| (skipped) | $n | needs $n open files per process; the limit here is $NOFILE_GOT (raising it needs CAP_SYS_RESOURCE) | | | | | | | |" | tee -a "$RAW"
    continue
  fi
  deadline=$(( n / OPEN_PER_S + WORDS * INTERVAL_MS / 1000 + 60 ))
  for build in before after; do
    bin=$AFTER; [[ $build == before ]] && bin=$BEFORE
    start "$bin" --delay-ms 0 --stream-delay-ms "$INTERVAL_MS" --response "$RESPONSE" --max-body-bytes 1048576
    client --streams "$n" --interval-ms "$INTERVAL_MS" --open-per-s "$OPEN_PER_S" --sources 4 --deadline-s "$deadline"
    echo "| $build | $n | $(f peak_open) | $(f errors) | $(f late_p50_pct) | $(f late_p99_pct) | $(f late_max_pct) | $(f rss_per_stream_kb) | $(f hwm_mb) | $(f cpu_us_per_frame) |" | tee -a "$RAW"
    cleanup
  done
done

{
  echo
  echo "## 2. large requests, non-streamed, zero delays: 20 connections (1 KB: 20 x $((REPEAT * 20)), 100 KB: 20 x $((REPEAT * 2)), 500 KB: 20 x $REPEAT requests)"
  echo "| build | body | requests | errors | CPU µs/request | ratio to 1 KB | p50 ms | p99 ms |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
} | tee -a "$RAW"
[[ " $SECTIONS " == *" 2 "* ]] && for build in before after; do
  bin=$AFTER; [[ $build == before ]] && bin=$BEFORE
  small=""
  # CPU is read in 10 ms ticks: small bodies need many requests for a usable figure.
  for spec in 1000:$((REPEAT * 20)) 100000:$((REPEAT * 2)) 500000:$REPEAT; do
    bytes=${spec%:*} repeat=${spec#*:}
    start "$bin" --delay-ms 0 --stream-delay-ms 0 --max-body-bytes 1048576
    client --streams 20 --repeat "$repeat" --stream false --body-bytes "$bytes" --interval-ms 1 --deadline-s 120
    us=$(f cpu_us_per_req)
    [[ -z $small ]] && small=$us
    echo "| $build | $bytes | $(f requests) | $(f errors) | $us | $(ratio "$us" "$small") | $(f total_p50_ms) | $(f total_p99_ms) |" | tee -a "$RAW"
    cleanup
  done
done

{
  echo
  echo "## 3. long answers: 50 concurrent streams, 5 ms per chunk (42 words: 20 in a row per connection)"
  echo "| build | chunks/stream | frames | errors | CPU µs/chunk | ratio to 42 | late p99 % |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} | tee -a "$RAW"
[[ " $SECTIONS " == *" 3 "* ]] && for build in before after; do
  bin=$AFTER; [[ $build == before ]] && bin=$BEFORE
  start "$bin" --delay-ms 0 --stream-delay-ms 5
  client --streams 50 --repeat 20 --interval-ms 5 --deadline-s 60
  small=$(f cpu_us_per_frame)
  echo "| $build | 42 | $(f frames) | $(f errors) | $small | 1.00 | $(f late_p99_pct) |" | tee -a "$RAW"
  start "$bin" --delay-ms 0 --stream-delay-ms 5 --response "$LONG"
  client --streams 50 --interval-ms 5 --deadline-s 60
  echo "| $build | 2000 | $(f frames) | $(f errors) | $(f cpu_us_per_frame) | $(ratio "$(f cpu_us_per_frame)" "$small") | $(f late_p99_pct) |" | tee -a "$RAW"
  cleanup
done
echo
echo "raw output: $RAW; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
