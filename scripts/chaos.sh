#!/usr/bin/env bash
# Fault injection with counts. Each scenario prints what it tried and what it found, and the
# script fails if any finding is wrong.
#
#   scripts/chaos.sh           the CI-sized run (the store scenarios also run in scripts/test.sh)
#   scripts/chaos.sh --long    1000 publishes killed at random points instead of 100
#   scripts/chaos.sh --skip-store   only the CLI and daemon scenarios (scripts/test.sh)
#
# Store scenarios (crates/recall-store/tests/chaos.rs): kill -9 of publishers across 100
# publishes on local disk and S3 (moto), then every manifest verified; random bytes flipped
# in stored blobs, then every fetch compared with the original bytes; a full 24 MiB tmpfs
# under publishes (needs root).
# CLI scenarios (below): bytes flipped in stored blobs; recall get and recall run must never
# write a corrupt byte (a damaged entry is a miss, and run recomputes it). The file:// store
# lock held by another process: lookups still answer, a publish fails after the lock timeout
# instead of hanging, and SIGTERM still stops recall run.
# Daemon scenarios (below): the S3 server paused with SIGSTOP under lookup load and resumed,
# then killed with SIGKILL and started again on the same port (moto keeps no data, so the
# entries are published again); recalld must answer CACHE_LOOKUP_FAILURE within its timeout,
# stay up, and serve hits again without being restarted. (crates/recalld/tests also cut the
# network path to the store with a proxy, which makes connections fail instead of hang.)
# Hostile clients (below): a publish without a token announcing a 4 GiB body must get its 401
# before the body is sent and leave recalld small; 400 idle connections against a limit of 64
# (and 256 open files) must not keep /healthz from answering; SIGTERM with a half-sent publish
# in flight must exit within the shutdown deadline.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
store_scenarios=yes
case "${1:-}" in
  --long) export RECALL_CHAOS_PUBLISHES=1000 ;;
  --skip-store) store_scenarios=no ;;  # scripts/test.sh: cargo test already ran them
  "") ;;
  *) sed -n '2,25p' "$0"; exit 2 ;;
esac
export RECALL_TEST_SKIP="azure${RECALL_TEST_SKIP:+,$RECALL_TEST_SKIP}"
source scripts/test-servers.sh
source scripts/recalld-url.sh
[ -n "${recall_moto_pid:-}" ] || { echo "chaos.sh needs the moto server it starts itself (unset RECALL_TEST_S3_BUCKET)"; exit 1; }

if [ "$store_scenarios" = yes ]; then
  echo "== chaos: store scenarios"
  cargo test --quiet -p recall-store --test chaos -- --nocapture
fi

cargo build --quiet -p recalld -p recall-bench -p recall
bin="${CARGO_TARGET_DIR:-$root/target}/debug"

echo "== chaos: bytes flipped in stored blobs, read back with recall get and recall run"
cli_dir="$recall_servers_dir/cli"
mkdir -p "$cli_dir/src" "$cli_dir/out"
cli_store="file://$cli_dir/store"
cli_entries=30
for n in $(seq "$cli_entries"); do
  head -c $((5000 + RANDOM * 8)) /dev/urandom > "$cli_dir/src/$n"
  "$bin/recall" put --quiet --store "$cli_store" --project chaos --domain dev --task wf.flip \
    --cache-version 1 --input "n:int=$n" --output "out:file=$cli_dir/src/$n"
done
damaged=0
for blob in $(find "$cli_dir/store" -path '*/blobs/*' -type f | sort); do
  if [ $((RANDOM % 2)) = 0 ] || [ "$damaged" = 0 ]; then
    # One bit of one random byte, inverted in place.
    python3 - "$blob" "$RANDOM$RANDOM" <<'PY'
import sys
path, seed = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    data = bytearray(f.read())
    i = seed % len(data)
    data[i] ^= 1 << (seed % 8)
    f.seek(0)
    f.write(data)
PY
    damaged=$((damaged + 1))
  fi
done
get_hits=0; get_misses=0; run_reruns=0; corrupt=0
for n in $(seq "$cli_entries"); do
  rm -f "$cli_dir/out/$n"
  if "$bin/recall" get --quiet --store "$cli_store" --project chaos --domain dev --task wf.flip \
       --cache-version 1 --input "n:int=$n" --output "out:file=$cli_dir/out/$n" 2>/dev/null; then
    get_hits=$((get_hits + 1))
    cmp -s "$cli_dir/out/$n" "$cli_dir/src/$n" || corrupt=$((corrupt + 1))
  else
    get_misses=$((get_misses + 1))
    # Nothing may be left at the output path after a miss.
    [ ! -e "$cli_dir/out/$n" ] || corrupt=$((corrupt + 1))
    # recall run recomputes (here: copies the original) and must hand back the true bytes.
    "$bin/recall" run --quiet --store "$cli_store" --project chaos --domain dev --task wf.flip \
      --cache-version 1 --input "n:int=$n" --output "out:file=$cli_dir/out/$n" \
      -- cp "$cli_dir/src/$n" "$cli_dir/out/$n"
    run_reruns=$((run_reruns + 1))
    cmp -s "$cli_dir/out/$n" "$cli_dir/src/$n" || corrupt=$((corrupt + 1))
  fi
done
echo "   $cli_entries entries put; $damaged blobs damaged; recall get: $get_hits hits, $get_misses misses;"
echo "   recall run re-ran $run_reruns; corrupt or leftover outputs written: $corrupt"
[ "$corrupt" = 0 ] || { echo "FAIL: recall wrote corrupt bytes"; exit 1; }
[ "$get_misses" = "$damaged" ] || { echo "FAIL: $damaged damaged blobs but $get_misses misses"; exit 1; }

echo "== chaos: the file:// store lock held by another process"
# Another process holds .recall-cas.lock (as any local user could before the lock file was
# private): lookups take no lock and answer; writes that need it give up after the lock
# timeout (10 s) with an error instead of hanging; SIGTERM still stops recall run.
lock_key=(--store "$cli_store" --project chaos --domain dev --task wf.flip --cache-version 1)
flock "$cli_dir/store/.recall-cas.lock" sleep 300 &
lock_holder=$!
sleep 0.5
lock_fail=0
rm -f "$cli_dir/out/1"
timeout 60 "$bin/recall" get --quiet "${lock_key[@]}" --input "n:int=1" \
  --output "out:file=$cli_dir/out/1" || { echo "FAIL: recall get with the lock held did not answer a hit"; lock_fail=1; }
# A publish needs the lock (its index marker): it fails cleanly, the run keeps status 0.
set +e
timeout 60 "$bin/recall" run --quiet "${lock_key[@]}" --input "n:int=1001" \
  --output "out:file=$cli_dir/out/1001" -- sh -c "echo x > '$cli_dir/out/1001'" 2>"$cli_dir/locked.err"
publish_status=$?
# SIGTERM during the command stops the run (the command is killed, status 128+15).
timeout 60 "$bin/recall" run --quiet "${lock_key[@]}" --input "n:int=1002" \
  --output "out:file=$cli_dir/out/1002" -- sleep 120 &
run_pid=$!
sleep 1
kill -TERM "$run_pid"
wait "$run_pid"
term_status=$?
set -e
kill "$lock_holder" 2>/dev/null || true
wait "$lock_holder" 2>/dev/null || true
echo "   publish with the lock held: status $publish_status ($(grep -o 'CACHE_PUT_FAILURE[^:]*' "$cli_dir/locked.err" | head -1 || true));"
echo "   recall run sent SIGTERM: status $term_status"
[ "$publish_status" = 0 ] && grep -q "lock is held by another process" "$cli_dir/locked.err" \
  || { echo "FAIL: publish with the lock held: status $publish_status"; cat "$cli_dir/locked.err"; lock_fail=1; }
[ "$term_status" = 143 ] || { echo "FAIL: recall run did not stop on SIGTERM (status $term_status; 124 = hung)"; lock_fail=1; }
[ "$lock_fail" = 0 ] || exit 1

echo "== chaos: S3 server paused under recalld lookup load"
export AWS_ENDPOINT_URL=$RECALL_TEST_S3_ENDPOINT AWS_REGION=$RECALL_TEST_S3_REGION AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=$RECALL_TEST_S3_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$RECALL_TEST_S3_SECRET_ACCESS_KEY
# make_bucket_and_entries: the bucket (if missing) and $entries entries under $store.
make_bucket_and_entries() {
  target/pyenv/bin/python - <<PY
import boto3
s3 = boto3.client("s3", endpoint_url="$RECALL_TEST_S3_ENDPOINT", region_name="$RECALL_TEST_S3_REGION")
if "$RECALL_TEST_S3_BUCKET" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
    s3.create_bucket(Bucket="$RECALL_TEST_S3_BUCKET")
PY
  "$bin/recall-bench" populate "$store" "$entries" >/dev/null
}
store="s3://$RECALL_TEST_S3_BUCKET/chaos-daemon-$$"
entries=200
make_bucket_and_entries
"$bin/recall-bench" keys "$entries" > "$recall_servers_dir/keys"
mapfile -t keys < "$recall_servers_dir/keys"
cat > "$recall_servers_dir/recalld.toml" <<TOML
store = "$store"
listen = "127.0.0.1:0"
[hot]
ttl_secs = 1
[timeouts]
lookup_ms = 300
[breaker]
failure_threshold = 5
open_ms = 1000
TOML
"$bin/recalld" --config "$recall_servers_dir/recalld.toml" >"$recall_servers_dir/recalld.out" 2>"$recall_servers_dir/recalld.log" &
recalld_pid=$!
recall_server_pids+=("$recalld_pid")
url=$(recalld_url "$recall_servers_dir/recalld.out" "$recall_servers_dir/recalld.log") || exit 1

# lookups N: N lookups of random keys, one at a time; prints "count status...", "max_ms".
lookups() {
  local n=$1 i key out code ms max=0
  declare -A seen=()
  for i in $(seq "$n"); do
    key=${keys[$((RANDOM % entries))]}
    out=$(curl -s -o "$recall_servers_dir/body" -w '%{http_code} %{time_total}' "$url/v1/entries/bench/perf/$key")
    code=${out% *}
    ms=$(awk -v t="${out#* }" 'BEGIN {printf "%d", t * 1000}')
    [ "$ms" -gt "$max" ] && max=$ms
    status=$(sed -n 's/.*"status":"\([A-Z_]*\)".*/\1/p' "$recall_servers_dir/body")
    seen["$code $status"]=$(( ${seen["$code $status"]:-0} + 1 ))
  done
  for k in "${!seen[@]}"; do printf '%s×%s ' "${seen[$k]}" "$k"; done
  echo "| slowest ${max} ms"
}

# probes_until_hit: one lookup of a random key every 0.5 s, up to 60; prints how many it
# took to get a 200, or nothing if none did.
probes_until_hit() {
  local attempt code
  for attempt in $(seq 60); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/entries/bench/perf/${keys[$((RANDOM % entries))]}")
    if [ "$code" = 200 ]; then echo "$attempt"; return 0; fi
    sleep 0.5
  done
}

before=$(lookups 100)
echo "   store up:      100 lookups: $before"
kill -STOP "$recall_moto_pid"
paused=$(lookups 100)
echo "   store paused:  100 lookups: $paused"
kill -CONT "$recall_moto_pid"
recovered_after=$(probes_until_hit)
after=$(lookups 100)
echo "   store resumed: first hit after $recovered_after probe(s) of 0.5 s; 100 lookups: $after"

echo "== chaos: S3 server killed (kill -9) under recalld lookup load and started again"
moto_port=${RECALL_TEST_S3_ENDPOINT##*:}
kill -9 "$recall_moto_pid"
wait "$recall_moto_pid" 2>/dev/null || true
stopped=$(lookups 100)
echo "   store stopped: 100 lookups: $stopped"
target/pyenv/bin/moto_server -H 127.0.0.1 -p "$moto_port" >"$recall_servers_dir/moto-restarted.log" 2>&1 &
recall_moto_pid=$!
recall_server_pids+=("$recall_moto_pid")
recall_wait_for moto "$RECALL_TEST_S3_ENDPOINT/" "$recall_moto_pid" "$recall_servers_dir/moto-restarted.log"
# moto keeps its objects in memory: the restarted server is empty, so the same entries are
# published again (recall-bench populate is deterministic) before recalld is asked for them.
make_bucket_and_entries
restarted_after=$(probes_until_hit)
restarted=$(lookups 100)
echo "   store restarted: first hit after $restarted_after probe(s) of 0.5 s; 100 lookups: $restarted"
alive=no; kill -0 "$recalld_pid" 2>/dev/null && alive=yes
echo "   recalld still running, same process: $alive"

echo "== chaos: hostile clients against recalld (large unauthenticated body, idle connections, half-sent request)"
hostile_dir="$recall_servers_dir/hostile"
mkdir -p "$hostile_dir"
# hostile_client MODE ADDRESS [ARGS]: raw-socket clients an HTTP library would not imitate.
hostile_client() {
  exec python3 - "$@" <<'PY'
import select, socket, sys, time
mode, address = sys.argv[1], sys.argv[2]
host, port = address.rsplit(":", 1)
def connect():
    return socket.create_connection((host, int(port)), timeout=10)
head = ("POST /v1/entries HTTP/1.1\r\nHost: chaos\r\n"
        "Content-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n\r\n"
        "--B\r\nContent-Disposition: form-data; name=\"material\"\r\n\r\n")
if mode == "large-body":
    # Announce 4 GiB and keep sending (up to 1 GiB) until an answer arrives.
    s = connect()
    started = time.monotonic()
    s.sendall((head % (4 << 30)).encode())
    chunk, sent, answer = b"x" * (1 << 20), 0, b""
    while sent < (1 << 30):
        readable, _, _ = select.select([s], [], [], 0)
        if readable:
            break
        try:
            s.sendall(chunk)
        except OSError:
            break
        sent += len(chunk)
    try:
        answer = s.recv(200)
    except OSError:
        pass
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "no answer"
    print("%s after %d ms, %d MiB of the body sent" % (status, (time.monotonic() - started) * 1000, sent >> 20))
elif mode == "idle":
    # Open N connections, send nothing, hold them for S seconds.
    n, hold = int(sys.argv[3]), float(sys.argv[4])
    held = []
    for _ in range(n):
        try:
            held.append(connect())
        except OSError as e:
            print("connect failed after %d: %s" % (len(held), e)); break
    print(len(held), flush=True)
    time.sleep(hold)
elif mode == "half-sent":
    # A publish whose body stops after its first bytes; hold it for S seconds.
    hold = float(sys.argv[3])
    s = connect()
    s.sendall((head % 100000).encode() + b'{"project":')
    print("sent", flush=True)
    time.sleep(hold)
PY
}
# start_hostile_recalld NAME OPEN_FILES TOML: a recalld over a local store; sets $hostile_pid
# and $hostile_address.
start_hostile_recalld() {
  local name=$1 files=$2 toml=$3
  printf 'spool_dir = "%s"\nstore = "file://%s"\nlisten = "127.0.0.1:0"\n%s\n' \
    "$hostile_dir/$name-spool" "$hostile_dir/$name-store" "$toml" > "$hostile_dir/$name.toml"
  (ulimit -n "$files"; exec "$bin/recalld" --config "$hostile_dir/$name.toml") \
    >"$hostile_dir/$name.out" 2>"$hostile_dir/$name.log" &
  hostile_pid=$!
  recall_server_pids+=("$hostile_pid")
  hostile_address=$(recalld_url "$hostile_dir/$name.out" "$hostile_dir/$name.log") || exit 1
  hostile_address=${hostile_address#http://}
}
rss_mib() { awk '/^VmRSS:/ {printf "%d", $2 / 1024}' "/proc/$1/status"; }

start_hostile_recalld guarded 256 'max_connections = 64
[timeouts]
header_read_secs = 600
[[tokens]]
name = "writer"
token = "chaos-writer-0123456789"
projects = ["*"]
domains = ["*"]
access = "write"'
large_body=$(hostile_client large-body "$hostile_address")
large_body_rss=$(rss_mib "$hostile_pid")
echo "   unauthenticated publish announcing 4 GiB: $large_body; recalld RSS afterwards ${large_body_rss} MiB"
# 400 idle connections against max_connections = 64 and 256 open files, held for 30 s.
hostile_client idle "$hostile_address" 400 30 > "$hostile_dir/idle.out" &
idle_client=$!
for _ in $(seq 100); do [ -s "$hostile_dir/idle.out" ] && break; sleep 0.1; done
healthz=$(curl -s -o /dev/null --max-time 10 -w '%{http_code} %{time_total}' "http://$hostile_address/healthz" || true)
healthz_code=${healthz% *}
healthz_ms=$(awk -v t="${healthz#* }" 'BEGIN {printf "%d", t * 1000}')
echo "   $(head -1 "$hostile_dir/idle.out") idle connections held (limit 64, 256 open files): /healthz answered ${healthz_code:-nothing} in ${healthz_ms} ms"
kill "$idle_client" 2>/dev/null || true
wait "$idle_client" 2>/dev/null || true
kill -TERM "$hostile_pid"; wait "$hostile_pid" 2>/dev/null || true

start_hostile_recalld draining 1024 '[timeouts]
shutdown_secs = 2
body_idle_secs = 600
header_read_secs = 600'
hostile_client half-sent "$hostile_address" 60 > "$hostile_dir/half.out" &
half_client=$!
for _ in $(seq 100); do [ -s "$hostile_dir/half.out" ] && break; sleep 0.1; done
curl -s -o /dev/null "http://$hostile_address/healthz"  # the half-sent request has been accepted
term_started=$(date +%s%N)
kill -TERM "$hostile_pid"
exited=no
for _ in $(seq 200); do
  kill -0 "$hostile_pid" 2>/dev/null || { exited=yes; break; }
  sleep 0.1
done
term_ms=$(( ($(date +%s%N) - term_started) / 1000000 ))
echo "   SIGTERM with a half-sent publish in flight (shutdown_secs = 2): exited $exited after ${term_ms} ms"
kill "$half_client" 2>/dev/null || true
wait "$half_client" 2>/dev/null || true

fail=0
[[ "$before" == *"100×200 CACHE_HIT"* ]] || { echo "FAIL: not every lookup was a hit before the pause"; fail=1; }
# While paused, hits from memory (1 s TTL) are allowed; everything else must fail open.
# check_fail_open WHEN SUMMARY: no 500 and no silence, CACHE_LOOKUP_FAILURE seen, and every
# lookup answered within 2 s (timeout 300 ms).
check_fail_open() {
  local when=$1 summary=$2 slowest
  if [[ "$summary" == *"×500"* ]] || [[ "$summary" == *"×000"* ]]; then echo "FAIL: a 500 or no answer while $when"; fail=1; fi
  [[ "$summary" == *"503 CACHE_LOOKUP_FAILURE"* ]] || { echo "FAIL: no CACHE_LOOKUP_FAILURE while $when"; fail=1; }
  slowest=${summary##*slowest }; slowest=${slowest% ms}
  [ "$slowest" -lt 2000 ] || { echo "FAIL: a lookup took ${slowest} ms while $when (timeout 300 ms)"; fail=1; }
}
check_fail_open paused "$paused"
[ -n "$recovered_after" ] || { echo "FAIL: no hit within 30 s of resuming"; fail=1; }
[[ "$after" == *"100×200 CACHE_HIT"* ]] || { echo "FAIL: not every lookup was a hit after resuming"; fail=1; }
check_fail_open stopped "$stopped"
[ -n "$restarted_after" ] || { echo "FAIL: no hit within 30 s of the restart"; fail=1; }
[[ "$restarted" == *"100×200 CACHE_HIT"* ]] || { echo "FAIL: not every lookup was a hit after the restart"; fail=1; }
[ "$alive" = yes ] || { echo "FAIL: recalld exited"; fail=1; }
[[ "$large_body" == "HTTP/1.1 401"* ]] || { echo "FAIL: the unauthenticated large publish got: $large_body"; fail=1; }
[[ "$large_body" != *", 1024 MiB of the body sent"* ]] || { echo "FAIL: the whole body was sent before recalld answered"; fail=1; }
[ "$large_body_rss" -lt 256 ] || { echo "FAIL: recalld grew to ${large_body_rss} MiB on an unauthenticated body"; fail=1; }
[ "$healthz_code" = 200 ] || { echo "FAIL: /healthz did not answer behind idle connections"; fail=1; }
[ "$exited" = yes ] && [ "$term_ms" -lt 6000 ] || { echo "FAIL: recalld took ${term_ms} ms to exit (deadline 2 s)"; fail=1; }
[ "$fail" = 0 ] && echo "== chaos: every scenario passed"
exit "$fail"
