#!/usr/bin/env bash
# recalld hot-hit lookups by key vs nginx serving a static file of the same size as the
# lookup's response, with wrk (2 threads, 50 connections); then recalld's RSS with its memory
# tier filled past its capacity. Prints a markdown table on stdout.
#
#   scripts/bench-daemon.sh
#
# Settings (environment):
#   BENCH_SECONDS=10        length of each wrk run
#   BENCH_CONNECTIONS=50    wrk connections
#   BENCH_HOT_MIB=64        recalld's hot-tier capacity for the RSS measurement
#   BENCH_FILL=1.25         publish this many times the entries that fit in the tier
#   RECALLD_BIN=path        use this recalld binary instead of building one
#
# Needs nginx and wrk (Debian packages; installed with apt-get when missing), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-50}
hot_mib=${BENCH_HOT_MIB:-64}

need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}" >&2
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${RECALLD_BIN:-}" ]; then
  echo "== building recalld (release)" >&2
  cargo build --quiet --release -p recalld
  RECALLD_BIN="${CARGO_TARGET_DIR:-$root/target}/release/recalld"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/recall-bench-daemon.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- recalld over a fresh local-disk store --------------------------------------------
mkdir -p "$work/store" "$work/spool"
env -u RECALL_CONFIG RECALL_LOG=warn RECALL_HOT_CAPACITY_BYTES=$((hot_mib * 1048576)) \
  RECALL_HOT_TTL_SECS=3600 RECALL_SPOOL_DIR="$work/spool" \
  "$RECALLD_BIN" --listen 127.0.0.1:0 --store "file://$work/store" \
  >"$work/recalld.out" 2>"$work/recalld.log" &
recalld_pid=$!
pids+=("$recalld_pid")
for _ in $(seq 100); do
  grep -q 'listening on' "$work/recalld.out" 2>/dev/null && break
  sleep 0.1
done
base=$(sed -n 's/^recalld: listening on //p' "$work/recalld.out")
[ -n "$base" ] || { cat "$work/recalld.log" >&2; echo "recalld did not start" >&2; exit 1; }

# One entry with one small (inlined) output: the common case of a hot hit.
material='{"project":"bench","domain":"development","task":"wf.square","cache_version":"1.0","inputs":[{"name":"n","type":"int","value":3}],"outputs":[{"name":"o0","type":"int"}]}'
printf '\x09' > "$work/o0"
key=$(curl -sf -X POST "$base/v1/keys" -d "$material" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
curl -sf -o /dev/null -F "material=$material" -F "o0=@$work/o0" "$base/v1/entries"
path="/v1/entries/bench/development/$key"
curl -sf "$base$path" > "$work/response.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["status"]=="CACHE_HIT" and d["from_hot_tier"], d' "$work/response.json"
size=$(stat -c %s "$work/response.json")

# --- nginx serving a file of the same size -----------------------------------------------
mkdir -p "$work/nginx/www" "$work/nginx/tmp"
chmod 755 "$work" "$work/nginx" "$work/nginx/www"  # nginx workers run as an unprivileged user
head -c "$size" /dev/zero | tr '\0' 'x' > "$work/nginx/www/manifest.json"
chmod 644 "$work/nginx/www/manifest.json"
nginx_port=$(free_port)
cat > "$work/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/nginx/www;
    default_type application/json;
  }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=("$!")
for _ in $(seq 50); do
  curl -sf -o /dev/null "http://127.0.0.1:$nginx_port/manifest.json" && break
  sleep 0.1
done

# --- load ----------------------------------------------------------------------------------
# wrk_run URL -> "REQ_PER_S P50_MS P99_MS"
wrk_run() {
  wrk -t2 -c"$connections" -d"${seconds}s" --latency "$1" | awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
      return v
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    END { if (bad) { print "wrk saw non-2xx answers" > "/dev/stderr"; exit 1 }
          printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}
echo "== warm-up" >&2
wrk -t2 -c"$connections" -d2s "$base$path" >/dev/null
wrk -t2 -c"$connections" -d2s "http://127.0.0.1:$nginx_port/manifest.json" >/dev/null
echo "== recalld hot hits, ${seconds}s, $connections connections" >&2
read -r r_rps r_p50 r_p99 < <(wrk_run "$base$path")
echo "== nginx static file of $size bytes, ${seconds}s, $connections connections" >&2
read -r n_rps n_p50 n_p99 < <(wrk_run "http://127.0.0.1:$nginx_port/manifest.json")
rss_after_hits=$(awk '/VmRSS/ {print $2}' "/proc/$recalld_pid/status")

# --- RSS with the memory tier full -----------------------------------------------------------
# Entries with one 4 KiB inlined output (the largest that is inlined) weigh about 8 KiB each
# (recall_hot::manifest_weight); publish enough to overflow the capacity by a quarter. Each publish writes through to memory.
echo "== filling the ${hot_mib} MiB hot tier" >&2
python3 - "$base" "$hot_mib" <<'PY'
import concurrent.futures, json, os, sys, urllib.request
base, mib = sys.argv[1], int(sys.argv[2])
count = int(mib * 1048576 / 8300 * float(os.environ.get("BENCH_FILL", "1.25")))
payload = os.urandom(4096)
def publish(i):
    material = json.dumps({"project": "bench", "domain": "development", "task": "wf.fill",
        "cache_version": "1.0", "inputs": [{"name": "n", "type": "int", "value": i}],
        "outputs": [{"name": "o", "type": "bytes"}]})
    boundary = "recallbenchboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"material\"\r\n\r\n{material}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"o\"\r\n\r\n").encode() \
           + payload + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(base + "/v1/entries", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req) as r:
        assert r.status in (200, 201), r.status
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(publish, range(count)))
print(f"   published {count} entries", file=sys.stderr)
PY
metrics=$(curl -sf "$base/metrics")
hot_bytes=$(awk '$1 == "recall_hot_bytes" {print $2}' <<<"$metrics")
hot_entries=$(awk '$1 == "recall_hot_entries" {print $2}' <<<"$metrics")
rss_full=$(awk '/VmRSS/ {print $2}' "/proc/$recalld_pid/status")

ratio=$(python3 -c "print(f'{$r_rps / $n_rps:.2f}')")
mib() { python3 -c "print(f'{$1 / 1024:.1f}')"; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
cat <<EOF

Machine: $(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo). wrk -t2 -c$connections -d${seconds}s on the same machine.
Response: recalld \`GET $path\` (hot hit, $size bytes of JSON) vs nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') serving a $size-byte static file.

| measure | recalld | nginx | target |
|---|---|---|---|
| requests/s | $r_rps | $n_rps | recalld ≥ 0.8 × nginx (ratio: $ratio) |
| p50 latency (ms) | $r_p50 | $n_p50 | |
| p99 latency (ms) | $r_p99 | $n_p99 | recalld < 1 ms |

| recalld memory | value |
|---|---|
| hot-tier capacity | $hot_mib MiB |
| RSS after the hit runs (tier nearly empty) | $(mib "$rss_after_hits") MiB |
| hot tier after filling: entries / weighted bytes | $hot_entries / $(python3 -c "print(f'{$hot_bytes / 1048576:.1f}')") MiB |
| RSS with the tier full | $(mib "$rss_full") MiB (target < capacity + 64 = $((hot_mib + 64)) MiB) |
EOF
