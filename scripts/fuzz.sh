#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo-fuzz (libFuzzer, nightly toolchain) of the three decoders
# that read bytes recall does not control: key material JSON, manifests, lease objects.
#
#   scripts/fuzz.sh                 60 s per target
#   scripts/fuzz.sh --seconds 600   longer
#   scripts/fuzz.sh manifest        one target
#
# Seeds come from fuzz/corpus/<target>/ (version-controlled; regenerate with
# `cargo run -p recall-store --example fuzz_seeds`). New inputs libFuzzer finds go to
# target/fuzz-corpus/<target>/, so the committed corpus only changes when someone copies an
# interesting input there on purpose. Crashes land in fuzz/artifacts/<target>/.
# The stable replay of the corpus runs in every `scripts/test.sh` (fuzz_corpus test).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=60
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(key_material manifest lease)

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "scripts/fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
tools="$root/target/tools"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  echo "== installing cargo-fuzz into target/tools"
  cargo install --quiet --locked --root "$tools" cargo-fuzz
fi
export PATH="$tools/bin:$PATH"

for target in "${targets[@]}"; do
  mkdir -p "target/fuzz-corpus/$target"
  echo "== fuzzing $target for ${seconds} s"
  log="target/fuzz-$target.log"
  status=0
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "target/fuzz-corpus/$target" "fuzz/corpus/$target" \
    -- -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::new_units_added|==[0-9]+== ERROR|SUMMARY)' "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "== $target: cargo fuzz exited with $status; the end of $log:" >&2
    tail -30 "$log" >&2
    exit 1
  fi
  if compgen -G "fuzz/artifacts/$target/crash-*" >/dev/null; then
    echo "== $target: crashes in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "== fuzzing done: no crashes"
