#!/usr/bin/env bash
# Fault injection with counts. Each scenario prints what it tried and what it found.
#
#   scripts/chaos.sh           the CI-sized run (also part of scripts/test.sh)
#   scripts/chaos.sh --long    1000 publishes killed at random points instead of 100
#
# Scenarios (crates/recall-store/tests/chaos.rs): kill -9 of publishers across 100 publishes
# on local disk and S3 (moto), then every manifest verified; random bytes flipped in stored
# blobs, then every fetch compared with the original bytes; a full 24 MiB tmpfs under
# publishes (needs root). recalld's fail-open behaviour with its store cut off and restored
# is in crates/recalld/tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "${1:-}" in
  --long) export RECALL_CHAOS_PUBLISHES=1000 ;;
  "") ;;
  *) sed -n '2,11p' "$0"; exit 2 ;;
esac
source scripts/test-servers.sh
cargo test --release -p recall-store --test chaos -- --nocapture
