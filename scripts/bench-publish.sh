#!/usr/bin/env bash
# Publishing a large output vs a plain copy of it into the same store, with peak RSS.
# Numbers go into docs/BENCHMARKS.md by hand.
#
#   scripts/bench-publish.sh [SIZE_MIB]        default 2048 (2 GiB)
#
# Runs against a fresh file:// store in a temporary directory, and, unless
# RECALL_TEST_SKIP names s3, against moto (started by scripts/test-servers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-2048}
work=$(mktemp -d "${TMPDIR:-/tmp}/recall-bench.XXXXXX")
export RECALL_TEST_SKIP="${RECALL_TEST_SKIP:+$RECALL_TEST_SKIP,}azure"
source scripts/test-servers.sh
trap 'recall_stop_test_servers; rm -rf "$work"' EXIT

cargo build --release --quiet -p recall-store --example publish_bench
bin=target/release/examples/publish_bench

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== input: $size_mib MiB of random bytes"
head -c "$((size_mib * 1048576))" /dev/urandom > "$work/input"
cat "$work/input" > /dev/null  # warm the page cache so both runs read from memory

run() {  # run LABEL MODE URL
  local label=$1 mode=$2 url=$3 out
  out=$( { /usr/bin/time -v "$bin" "$mode" "$url" "$work/input"; } 2>&1 )
  printf '%-28s %s; peak RSS %s KiB\n' "$label" \
    "$(grep -E '^(publish|copy):' <<<"$out")" \
    "$(awk -F': ' '/Maximum resident set size/ {print $2}' <<<"$out")"
}

for attempt in 1 2; do
  rm -rf "$work/store-p" "$work/store-c"
  run "file:// publish (#$attempt)" publish "file://$work/store-p"
  run "file:// plain copy (#$attempt)" copy "file://$work/store-c"
done
if [ -n "${RECALL_TEST_S3_BUCKET:-}" ]; then
  export AWS_ENDPOINT_URL=$RECALL_TEST_S3_ENDPOINT AWS_REGION=$RECALL_TEST_S3_REGION
  export AWS_ACCESS_KEY_ID=$RECALL_TEST_S3_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$RECALL_TEST_S3_SECRET_ACCESS_KEY
  "$bin" make-bucket "$RECALL_TEST_S3_BUCKET"
  run "s3 (moto) publish" publish "s3://$RECALL_TEST_S3_BUCKET/bench-p-$$"
  run "s3 (moto) plain copy" copy "s3://$RECALL_TEST_S3_BUCKET/bench-c-$$"
fi
