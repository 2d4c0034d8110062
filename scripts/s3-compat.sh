#!/usr/bin/env bash
# Runs recall's S3-facing tests against an S3 implementation other than moto, and prints what
# passed and failed per test binary.
#
#   scripts/s3-compat.sh       installs s3s-fs (crates.io, a filesystem-backed S3 server
#                              from the s3s project) into target/s3-compat-tools, starts it on
#                              a free 127.0.0.1 port with SigV4 auth and a temporary data
#                              directory, and runs the tests against it
#   RECALL_S3_COMPAT_SERVER=garage scripts/s3-compat.sh
#                              the same with Garage 2.5 (crates.io `garage`, built by this
#                              script into target/s3-compat-tools on first use, as a debug
#                              build: this is a compatibility check, not a benchmark, and a
#                              debug build takes far less time on 2 cores), run as a single node
#                              (sqlite metadata, replication factor 1) on free 127.0.0.1 ports
#                              with its own access key and bucket
#   RECALL_TEST_S3_ENDPOINT=http://127.0.0.1:9000 RECALL_TEST_S3_BUCKET=recall-test \
#   RECALL_TEST_S3_ACCESS_KEY_ID=... RECALL_TEST_S3_SECRET_ACCESS_KEY=... scripts/s3-compat.sh
#                              starts no server: runs the same tests against that endpoint
#                              (MinIO, AWS, ...); the bucket is created if missing
#
# The tests run (only their S3 parts; local-disk, Azure and daemon-over-file cases are left
# to scripts/test.sh):
#   recall-store  s3 (the conformance suite), outside_reader, python_reader, chaos (S3 scenarios)
#   recall        run_e2e, the s3:: and daemon_s3:: cases
#   recalld       s3 (the real binary over S3)
#
# A probe first sends plain signed requests and prints the statuses: conditional PUTs
# (If-None-Match: *, If-Match), a ranged GET, and 16 racing conditional PUTs to one key.
# - A server that ignores conditional writes (Garage, s3rver) is what recall's tests of a store
#   without them are about: recall-store s3_nocas, recall capabilities_e2e and recalld's
#   store_without_conditional_writes run against it, and the tests that assert a guarantee of
#   conditional writes are skipped by name with the reason printed.
# - A server that honours them one at a time but lets more than one racer win is reported
#   unsuitable for concurrent publishers and leases, and the tests that depend on exactly one
#   winner are skipped by name with the reason printed.
# (`known_gaps` below; RECALL_S3_COMPAT_NO_SKIP=1 runs them anyway.) Nothing else is skipped
# or weakened.
#
#   RECALL_CARGO="flock /tmp/lock cargo"   the cargo command (default: cargo)
#   RECALL_S3_COMPAT_SKIP=chaos,python     leave out these test groups
#
# Exits non-zero if any test failed. Not part of scripts/test.sh: building s3s-fs takes about
# 14 minutes on 2 cores and the run itself about 3.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
read -r -a cargo_cmd <<<"${RECALL_CARGO:-cargo}"
tools="$root/target/s3-compat-tools"
s3s_version=0.14.1
garage_version=2.5.0
started=$(date +%s)
compat_skipped() { [[ ",${RECALL_S3_COMPAT_SKIP:-}," == *",$1,"* ]]; }

work=$(mktemp -d "${TMPDIR:-/tmp}/recall-s3-compat.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# wait_started NAME TRIES CHECK...: runs the command CHECK every 0.2 s, TRIES times at most,
# until it succeeds; if the server ($server_pid) exits meanwhile, prints its log
# ($work/NAME.log) and stops the script.
wait_started() {
  local name=$1 tries=$2 i
  shift 2
  for i in $(seq 1 "$tries"); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "== $name exited during start-up; its log:" >&2
      cat "$work/$name.log" >&2
      exit 1
    fi
    "$@" && return 0
    sleep 0.2
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The server under test: ours (s3s-fs) unless RECALL_TEST_S3_ENDPOINT names one.
known_gaps=()  # "binary|test name|reason", applied with --skip
if [ -n "${RECALL_TEST_S3_ENDPOINT:-}" ]; then
  : "${RECALL_TEST_S3_BUCKET:?RECALL_TEST_S3_BUCKET must be set with RECALL_TEST_S3_ENDPOINT}"
  server="$RECALL_TEST_S3_ENDPOINT (given; no server started)"
elif [ "${RECALL_S3_COMPAT_SERVER:-s3s-fs}" = garage ]; then
  echo "== installing garage $garage_version into $tools if missing (crates.io; long the first time)"
  # sqlite alone as metadata engine (lmdb and k2v left out: fewer C builds); bundled C libs.
  "${cargo_cmd[@]}" install --quiet --locked --debug --root "$tools" --no-default-features \
    --features bundled-libs,sqlite "garage@$garage_version"
  port=$(free_port)
  rpc_port=$(free_port)
  mkdir -p "$work/garage/meta" "$work/garage/data"
  chmod 700 "$work/garage"
  hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
  cat >"$work/garage/garage.toml" <<GARAGE_TOML
metadata_dir = "$work/garage/meta"
data_dir = "$work/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$port"
GARAGE_TOML
  chmod 600 "$work/garage/garage.toml"
  # --single-node lays out this one node; --default-bucket creates the bucket and the key
  # below and gives the key read, write and owner rights on it.
  garage_key=GK$(hex 12)
  garage_secret=$(hex 32)
  GARAGE_DEFAULT_ACCESS_KEY=$garage_key GARAGE_DEFAULT_SECRET_KEY=$garage_secret \
    GARAGE_DEFAULT_BUCKET=rcc RUST_LOG=warn \
    "$tools/bin/garage" -c "$work/garage/garage.toml" server --single-node --default-bucket \
    >"$work/garage.log" 2>&1 &
  server_pid=$!
  # Ready once the default bucket answers a signed HEAD.
  garage_answers() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' -I --aws-sigv4 'aws:amz:us-east-1:s3' \
      --user "$garage_key:$garage_secret" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
      "http://127.0.0.1:$port/rcc")" = 200 ]
  }
  wait_started garage 300 garage_answers
  export RECALL_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  export RECALL_TEST_S3_BUCKET=rcc
  export RECALL_TEST_S3_REGION=us-east-1
  export RECALL_TEST_S3_ACCESS_KEY_ID=$garage_key
  export RECALL_TEST_S3_SECRET_ACCESS_KEY=$garage_secret
  server="garage $garage_version (single node) on $RECALL_TEST_S3_ENDPOINT"
else
  if [ ! -x "$tools/bin/s3s-fs" ] || ! "$tools/bin/s3s-fs" --version | grep -qF "$s3s_version"; then
    echo "== installing s3s-fs $s3s_version into $tools (crates.io)"
    # 0.14.1 is the newest s3s-fs whose rust-version our stable toolchain meets.
    "${cargo_cmd[@]}" install --quiet --locked --root "$tools" --features binary "s3s-fs@$s3s_version"
  fi
  port=$(free_port)
  mkdir "$work/data"
  RUST_LOG=warn "$tools/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
    --access-key recall-compat --secret-key recall-compat-secret "$work/data" \
    >"$work/s3s-fs.log" 2>&1 &
  server_pid=$!
  wait_started s3s-fs 150 curl -s -o /dev/null "http://127.0.0.1:$port/"
  export RECALL_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  # s3s-fs names a metadata file after base64(bucket) + base64(key), and file names end at 255
  # bytes: a short bucket and short test roots keep recall's keys under that.
  export RECALL_TEST_S3_BUCKET=rcc
  export RECALL_TEST_S3_SHORT_ROOTS=1
  export RECALL_TEST_S3_REGION=us-east-1
  export RECALL_TEST_S3_ACCESS_KEY_ID=recall-compat
  export RECALL_TEST_S3_SECRET_ACCESS_KEY=recall-compat-secret
  server="s3s-fs $s3s_version on $RECALL_TEST_S3_ENDPOINT"
fi
export RECALL_TEST_S3_REGION="${RECALL_TEST_S3_REGION:-us-east-1}"
access_key="${RECALL_TEST_S3_ACCESS_KEY_ID:-${AWS_ACCESS_KEY_ID:-}}"
secret_key="${RECALL_TEST_S3_SECRET_ACCESS_KEY:-${AWS_SECRET_ACCESS_KEY:-}}"
echo "== S3 server: $server, bucket $RECALL_TEST_S3_BUCKET"

# Create the bucket (signed, so it works with auth on); an existing one is fine.
curl -s -o /dev/null --aws-sigv4 "aws:amz:$RECALL_TEST_S3_REGION:s3" \
  --user "$access_key:$secret_key" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PUT \
  "${RECALL_TEST_S3_ENDPOINT%/}/$RECALL_TEST_S3_BUCKET" || true
status=$(curl -s -o /dev/null -w '%{http_code}' -I --aws-sigv4 "aws:amz:$RECALL_TEST_S3_REGION:s3" \
  --user "$access_key:$secret_key" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
  "${RECALL_TEST_S3_ENDPOINT%/}/$RECALL_TEST_S3_BUCKET" || true)
if [ "$status" != 200 ]; then
  echo "== bucket $RECALL_TEST_S3_BUCKET is not there (HEAD answered $status); stopping" >&2
  exit 1
fi

# A direct probe of what recall relies on, with plain signed requests (HTTP statuses).
s3() {
  curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:$RECALL_TEST_S3_REGION:s3" \
    --user "$access_key:$secret_key" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    -H 'Content-Type: application/octet-stream' "$@"
}
probe="${RECALL_TEST_S3_ENDPOINT%/}/$RECALL_TEST_S3_BUCKET/s3-compat-probe-$$"
echo "== probe (HTTP statuses; AWS S3 answers are in brackets)"
echo "   PUT If-None-Match: * on a new key       $(s3 -X PUT -H 'If-None-Match: *' --data-binary one "$probe/a") [200]"
create_on_existing=$(s3 -X PUT -H 'If-None-Match: *' --data-binary two "$probe/a")
echo "   PUT If-None-Match: * on an existing key $create_on_existing [412]"
replace_stale=$(s3 -X PUT -H 'If-Match: "0123456789abcdef0123456789abcdef"' --data-binary three "$probe/a")
echo "   PUT If-Match: stale ETag                $replace_stale [412]"
etag=$(curl -s -I --aws-sigv4 "aws:amz:$RECALL_TEST_S3_REGION:s3" --user "$access_key:$secret_key" \
  -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$probe/a" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
echo "   PUT If-Match: current ETag              $(s3 -X PUT -H "If-Match: $etag" --data-binary five "$probe/a") [200]"
echo "   PUT If-Match: on a missing key          $(s3 -X PUT -H 'If-Match: "0123456789abcdef0123456789abcdef"' --data-binary four "$probe/missing") [404 or 412]"
long_key=$(printf 'k%.0s' $(seq 1 200))
echo "   PUT of a 200-byte key                   $(s3 -X PUT --data-binary six "$probe/$long_key") [200]"
echo "   GET Range: bytes=1-2                    $(s3 -H 'Range: bytes=1-2' "$probe/a") [206]"
# 16 simultaneous create-if-absent PUTs of 4 MiB to one new key: exactly one may succeed.
head -c 4194304 /dev/urandom >"$work/body"
racers=()
for i in $(seq 1 16); do
  s3 -X PUT -H 'If-None-Match: *' --data-binary "@$work/body" "$probe/race" >"$work/race.$i" &
  racers+=($!)
done
wait "${racers[@]}"
echo "   16 racing If-None-Match: * PUTs:       $(cat "$work"/race.* | fold -w3 | sort | uniq -c | awk '{ printf "%s×%s ", $1, $2 }')[1×200 15×412]"
# 16 simultaneous replace-if-ETag-matches PUTs with the same current ETag, each of a different
# body (so each success changes the ETag): exactly one may succeed.
etag=$(curl -s -I --aws-sigv4 "aws:amz:$RECALL_TEST_S3_REGION:s3" --user "$access_key:$secret_key" \
  -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$probe/race" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
racers=()
for i in $(seq 1 16); do
  { echo "$i"; cat "$work/body"; } >"$work/body.$i"
  s3 -X PUT -H "If-Match: $etag" --data-binary "@$work/body.$i" "$probe/race" >"$work/cas.$i" &
  racers+=($!)
done
wait "${racers[@]}"
echo "   16 racing If-Match: <same ETag> PUTs:  $(cat "$work"/cas.* | fold -w3 | sort | uniq -c | awk '{ printf "%s×%s ", $1, $2 }')[1×200 15×412 (or 409)]"
for key in a race "$long_key"; do s3 -X DELETE "$probe/$key" >/dev/null; done
create_winners=$(cat "$work"/race.* | fold -w3 | grep -c '^200$' || true)
replace_winners=$(cat "$work"/cas.* | fold -w3 | grep -c '^200$' || true)
# The tests that need exactly one winner among racing conditional writes; a server without
# conditional writes fails more (below).
racing_tests=(
  "recall-store/s3|sixty_four_concurrent_publishers_one_winner"
  "recall-store/s3|lease_racers_exactly_one_acquires"
  "recall-store/s3|racing_publishers_with_other_outputs_are_all_recorded"
  "recall/run_e2e|thirty_two_serialized_runs_compute_once"
)
# Those that assert a guarantee only conditional writes give. recalld's: leases and
# auth_matrix take a lease (refused there, 501); readyz_... and starts_... expect the probe to
# find create-if-absent; miss_publish_... and backend_cut_... expect a publish written through
# to memory, which recalld does only when conditional writes make it the manifest kept.
conditional_tests=(
  "recall-store/s3|a_sound_entry_written_concurrently_is_not_replaced"
  "recall-store/s3|conditional_writes_are_enforced_by_the_backend"
  "recall-store/s3|probe_finds_every_capability_and_cleans_up"
  "recall/capabilities_e2e|doctor_on_moto_reports_every_guarantee"
  "recalld/s3|leases"
  "recalld/s3|auth_matrix"
  "recalld/s3|readyz_shows_the_capabilities"
  "recalld/s3|starts_while_the_store_is_down"
  "recalld/s3|miss_publish_store_hit_hot_hit"
  "recalld/s3|backend_cut_fails_open_and_recovers"
)
gaps=() reason=
extra_tests=()
if [ "$create_on_existing" != 412 ] || [ "$replace_stale" != 412 ]; then
  # A server that ignores conditional writes is what recall's tests of such a store are about
  # (scripts/test.sh runs them against s3rver): here they run against this server.
  echo "== NO CONDITIONAL WRITES: recall must detect it, refuse leases and keep publishing safely"
  reason="asserts a guarantee of conditional writes, which this server does not honour"
  gaps=("${racing_tests[@]}" "${conditional_tests[@]}")
  export RECALL_TEST_S3NOCAS_ENDPOINT=$RECALL_TEST_S3_ENDPOINT
  export RECALL_TEST_S3NOCAS_BUCKET=$RECALL_TEST_S3_BUCKET
  export RECALL_TEST_S3NOCAS_REGION=$RECALL_TEST_S3_REGION
  export RECALL_TEST_S3NOCAS_ACCESS_KEY_ID=$access_key
  export RECALL_TEST_S3NOCAS_SECRET_ACCESS_KEY=$secret_key
  extra_tests=(recall-store/s3_nocas recall/capabilities_e2e)
elif [ "$create_winners" -ne 1 ] || [ "$replace_winners" -ne 1 ]; then
  echo "== UNSUITABLE for concurrent publishers and leases: racing conditional PUTs had" \
    "$create_winners and $replace_winners winners where exactly one is allowed"
  reason="needs atomic conditional writes; the probe above saw more than one racing winner"
  gaps=("${racing_tests[@]}")
fi
if [ -z "${RECALL_S3_COMPAT_NO_SKIP:-}" ]; then
  for gap in "${gaps[@]}"; do
    known_gaps+=("$gap|$reason")
  done
fi
if [ ${#extra_tests[@]} -eq 0 ]; then
  RECALL_TEST_SKIP="s3nocas${RECALL_TEST_SKIP:+,$RECALL_TEST_SKIP}"
  echo "== the tests of a store without conditional writes are left to scripts/test.sh (s3rver)"
fi

# Only the S3 parts: recall-store's own skip switch leaves out Azure and the full disk.
export RECALL_TEST_SKIP="azure,fulldisk${RECALL_TEST_SKIP:+,$RECALL_TEST_SKIP}"
export RUST_BACKTRACE=0  # the panic message says enough; backtraces would bury the summary
if compat_skipped python; then
  RECALL_TEST_SKIP="$RECALL_TEST_SKIP,python"
else
  venv="$root/target/pyenv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi

echo "== building the test binaries"
"${cargo_cmd[@]}" test --no-run --message-format=json -p recall-store -p recall -p recalld \
  --test s3 --test outside_reader --test python_reader --test chaos --test run_e2e \
  --test s3_nocas --test capabilities_e2e \
  >"$work/build.json"
# "package/target path" per test executable.
python3 - "$work/build.json" >"$work/executables" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        package_dir = m["manifest_path"].rsplit("/", 1)[0]
        package = package_dir.rsplit("/", 1)[-1]  # crates/NAME holds package NAME
        print(f'{package}/{m["target"]["name"]} {m["executable"]} {package_dir}')
PY

# What `recall doctor` makes of the server (0: every guarantee, 1: weaker ones, named).
doctor_rc=0
AWS_ENDPOINT_URL=$RECALL_TEST_S3_ENDPOINT AWS_ALLOW_HTTP=true AWS_REGION=$RECALL_TEST_S3_REGION \
  AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret_key \
  "${CARGO_TARGET_DIR:-$root/target}/debug/recall" doctor \
  --store "s3://$RECALL_TEST_S3_BUCKET/s3-compat-doctor-$$" || doctor_rc=$?
echo "== recall doctor exited $doctor_rc"

executable_of() { awk -v want="$1" '$1 == want { print $2 }' "$work/executables"; }
dir_of() { awk -v want="$1" '$1 == want { print $3 }' "$work/executables"; }

summary=()
failed_total=0
# run_tests NAME [libtest arguments...]: runs one test binary, from its package's directory
# like cargo does, and adds a line to the summary.
run_tests() {
  local name=$1 exe dir log passed failed skipped=0 gap args=() rc=0
  shift
  exe=$(executable_of "$name")
  dir=$(dir_of "$name")
  [ -n "$exe" ] || { echo "no test executable for $name" >&2; exit 1; }
  args=("$@")
  for gap in "${known_gaps[@]}"; do
    IFS='|' read -r gap_binary gap_test gap_reason <<<"$gap"
    if [ "$gap_binary" = "$name" ]; then
      echo "== SKIPPED $name $gap_test: $gap_reason"
      args+=(--skip "$gap_test")
      skipped=$((skipped + 1))
    fi
  done
  log="$work/$(echo "$name" | tr / -).log"
  echo "== $name ${args[*]}"
  local t0 t1
  t0=$(date +%s)
  (cd "$dir" && timeout 900 "$exe" "${args[@]}") 2>&1 | tee "$log" || rc=$?
  t1=$(date +%s)
  passed=$(sed -n 's/^test result: .* \([0-9]*\) passed; .*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
  failed=$(sed -n 's/^test result: .* \([0-9]*\) failed; .*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1  # crashed, timed out, or a harness-less binary (chaos) that failed
  fi
  if [ "$rc" -eq 0 ] && [ "$passed" -eq 0 ] && ! grep -q '^test result:' "$log"; then
    passed=1  # chaos: one harness-less run that exited 0
  fi
  failed_total=$((failed_total + failed))
  summary+=("$(printf '%-28s %3d passed, %d failed, %d skipped (%ds)' \
    "$name" "$passed" "$failed" "$skipped" "$((t1 - t0))")")
}

run_tests recall-store/s3
run_tests recall-store/outside_reader
compat_skipped python || run_tests recall-store/python_reader
compat_skipped chaos || run_tests recall-store/chaos
run_tests recall/run_e2e s3::
run_tests recalld/s3
for extra in "${extra_tests[@]}"; do
  run_tests "$extra"
done

echo
echo "== s3-compat summary: $server ($(($(date +%s) - started))s in all)"
echo "   recall doctor exit $doctor_rc (0: every guarantee; 1: runs with weaker ones)"
for line in "${summary[@]}"; do
  echo "   $line"
done
[ "$failed_total" -eq 0 ]
