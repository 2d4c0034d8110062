#!/usr/bin/env bash
# Runs recall's benchmarks side by side with their references and rewrites
# docs/BENCHMARKS.md from the results, with the machine described.
#
#   scripts/bench.sh            all benchmarks
#   BENCH_FILE_MIB=256 scripts/bench.sh   a smaller hashing file (default 1024 MiB)
#
# Installs what it needs (b3sum from crates.io) under target/bench-tools.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools="$root/target/bench-tools"
out="$root/docs/BENCHMARKS.md"
mib=${BENCH_FILE_MIB:-1024}
runs=5

command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc; }
echo "== installing b3sum into $tools"
cargo install --quiet --locked --root "$tools" b3sum
b3sum="$tools/bin/b3sum"
echo "== building recall (release)"
cargo build --quiet --release -p recall
recall="$root/target/release/recall"

work=$(mktemp -d "$root/target/bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
# Median wall time of "$@" over $runs runs, in seconds.
median_seconds() {
  local times=()
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(now); "$@" >/dev/null; t1=$(now)
    times+=("$(echo "$t1 - $t0" | bc -l)")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

echo "== file hashing: ${mib} MiB, recall key vs b3sum (median of $runs, page cache warm)"
head -c "$((mib * 1024 * 1024))" /dev/urandom > "$work/big"
cat "$work/big" > /dev/null
"$recall" key --project p --domain d --task t --cache-version 1 --input "f:file=@$work/big" >/dev/null
t_b3=$(median_seconds "$b3sum" --no-names "$work/big")
t_recall=$(median_seconds "$recall" key --project p --domain d --task t --cache-version 1 --input "f:file=@$work/big")
gib=$(echo "$mib / 1024" | bc -l)
tp_b3=$(echo "$gib / $t_b3" | bc -l)
tp_recall=$(echo "$gib / $t_recall" | bc -l)
ratio_hash=$(echo "$tp_recall / $tp_b3" | bc -l)

echo "== key derivation, 10 scalar inputs (criterion)"
cargo bench --quiet -p recall-key --bench derive -- --noplot >/dev/null
derive_ns=$(python3 -c 'import json; print(json.load(open("target/criterion/derive_10_scalar_inputs/new/estimates.json"))["mean"]["point_estimate"])')
derive_us=$(echo "$derive_ns / 1000" | bc -l)

verdict() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo "met"; else echo "**missed**"; fi; }

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` from one run on $(date -u +%Y-%m-%d). Re-run it to refresh."
  echo
  echo "Machine: $(nproc) cores ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB memory,"
  echo "$(uname -sr), $(rustc --version)."
  echo
  echo "## Key derivation (issue 2)"
  echo
  echo "| what | measured | reference | ratio | target | verdict |"
  echo "|---|---|---|---|---|---|"
  printf '| hash a %s MiB file input (`recall key`, whole process) | %.2f GiB/s (%.3f s) | `b3sum` %.2f GiB/s (%.3f s) | %.2f× | ≥ 0.9× b3sum | %s |\n' \
    "$mib" "$tp_recall" "$t_recall" "$tp_b3" "$t_b3" "$ratio_hash" "$(verdict "$ratio_hash >= 0.9")"
  printf '| derive a key, 10 scalar inputs (criterion mean) | %.2f µs | — | — | ≤ 5 µs | %s |\n' \
    "$derive_us" "$(verdict "$derive_us <= 5")"
  echo
  echo "File hashing: median of $runs runs each, the file in the page cache, both tools"
  echo "memory-map the file and hash on all cores. The recall figure includes process start"
  echo "and the key derivation around the file digest."
} > "$out"
echo "== wrote $out"
cat "$out"
