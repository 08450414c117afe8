#!/usr/bin/env bash
# Builds the barrage image from local material only (no image registry needed): FROM scratch,
# the `barrage` binary (it carries worker, mock LLM and reference runtime as subcommands) and
# the shared libraries `ldd` lists for it.
#
# Usage: deploy/image/build.sh [BINARY] [TAG]
#   BINARY  default target/release/barrage (cargo build --release -p barrage-controller)
#   TAG     default barrage:local
set -euo pipefail
BIN="${1:-target/release/barrage}"
TAG="${2:-barrage:local}"
[[ -x "$BIN" ]] || { echo "build.sh: $BIN is not an executable; cargo build --release -p barrage-controller first" >&2; exit 2; }
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/root/usr/local/bin" "$ctx/root/tmp" "$ctx/root/results"
chmod 1777 "$ctx/root/tmp" "$ctx/root/results"
cp "$BIN" "$ctx/root/usr/local/bin/barrage"
# every library the dynamic loader will open, and the loader itself
while read -r lib; do
  [[ -n "$lib" && -e "$lib" ]] || continue
  mkdir -p "$ctx/root$(dirname "$lib")"
  cp -L "$lib" "$ctx/root$lib"
done < <(ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root/ /
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/barrage"]
DOCKERFILE
docker build --quiet -t "$TAG" "$ctx"
echo "build.sh: built $TAG from $BIN" >&2
