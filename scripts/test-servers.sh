# Starts the object-store servers the recall-store conformance suite talks to, on free
# 127.0.0.1 ports, and exports the variables the suite reads. SOURCE it (scripts/test.sh does):
#
#   source scripts/test-servers.sh
#
# S3:    moto[server] from PyPI, installed into target/pyenv. Exports RECALL_TEST_S3_ENDPOINT,
#        RECALL_TEST_S3_BUCKET, RECALL_TEST_S3_REGION, RECALL_TEST_S3_ACCESS_KEY_ID and
#        RECALL_TEST_S3_SECRET_ACCESS_KEY. If RECALL_TEST_S3_BUCKET is already set (MinIO or
#        AWS, see crates/recall-testkit/src/s3.rs), moto is not started.
# Azure: Azurite from npm, installed into target/node. Exports RECALL_TEST_AZURE_ENDPOINT,
#        RECALL_TEST_AZURE_ACCOUNT, RECALL_TEST_AZURE_KEY and RECALL_TEST_AZURE_CONTAINER. If
#        RECALL_TEST_AZURE_CONTAINER is already set, Azurite is not started.
# S3 without conditional writes: s3rver from npm, installed into target/node. It answers 200
#        to `If-None-Match: *` on an existing key and to a stale `If-Match` (as Garage does), so
#        the tests can check that recall notices. Exports RECALL_TEST_S3NOCAS_ENDPOINT and
#        RECALL_TEST_S3NOCAS_BUCKET (credentials: s3rver's fixed S3RVER / S3RVER).
# RECALL_TEST_SKIP=s3, =azure or =s3nocas (comma-separated) starts no server for that backend;
# the suite then skips that backend and says so.
#
# Server data lives in a temporary directory; an EXIT trap stops the servers and removes it.

recall_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
recall_servers_dir=$(mktemp -d "${TMPDIR:-/tmp}/recall-test-servers.XXXXXX")
recall_server_pids=()

recall_stop_test_servers() {
  local pid
  for pid in "${recall_server_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${recall_server_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$recall_servers_dir"
}
trap recall_stop_test_servers EXIT

recall_skipping() { [[ ",${RECALL_TEST_SKIP:-}," == *",$1,"* ]]; }

recall_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# recall_wait_for NAME URL PID LOG: polls URL until any HTTP answer (30 s), or fails.
recall_wait_for() {
  local name=$1 url=$2 pid=$3 log=$4 i
  for i in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "== $name exited during start-up; its log:" >&2
      cat "$log" >&2
      return 1
    fi
    if python3 - "$url" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass  # any HTTP status means the server answers
PY
    then
      return 0
    fi
    sleep 0.2
  done
  echo "== $name did not answer at $url within 30 s; its log:" >&2
  cat "$log" >&2
  return 1
}

if recall_skipping s3; then
  echo "== SKIPPED (RECALL_TEST_SKIP): S3 server"
elif [ -n "${RECALL_TEST_S3_BUCKET:-}" ]; then
  echo "== S3: using ${RECALL_TEST_S3_ENDPOINT:-AWS} bucket $RECALL_TEST_S3_BUCKET (moto not started)"
else
  venv="$recall_root/target/pyenv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  if [ ! -x "$venv/bin/moto_server" ]; then
    echo "== installing moto[server] into target/pyenv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
  fi
  port=$(recall_free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$recall_servers_dir/moto.log" 2>&1 &
  recall_server_pids+=($!)
  recall_moto_pid=$!  # scripts/chaos.sh pauses and resumes it
  recall_wait_for moto "http://127.0.0.1:$port/" "$!" "$recall_servers_dir/moto.log"
  export RECALL_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  export RECALL_TEST_S3_BUCKET=recall-test
  export RECALL_TEST_S3_REGION=us-east-1
  export RECALL_TEST_S3_ACCESS_KEY_ID=recall-test
  export RECALL_TEST_S3_SECRET_ACCESS_KEY=recall-test
  echo "== S3: moto on $RECALL_TEST_S3_ENDPOINT"
fi

if recall_skipping azure; then
  echo "== SKIPPED (RECALL_TEST_SKIP): Azure server"
elif [ -n "${RECALL_TEST_AZURE_CONTAINER:-}" ]; then
  echo "== Azure: using ${RECALL_TEST_AZURE_ENDPOINT:-the default endpoint}, container $RECALL_TEST_AZURE_CONTAINER (Azurite not started)"
else
  node_dir="$recall_root/target/node"
  if [ ! -x "$node_dir/node_modules/.bin/azurite-blob" ] || [ ! -d "$node_dir/node_modules/@azure/storage-blob" ]; then
    echo "== installing azurite and @azure/storage-blob into target/node"
    mkdir -p "$node_dir"
    (cd "$node_dir" && npm install --no-audit --no-fund --silent azurite @azure/storage-blob)
  fi
  port=$(recall_free_port)
  "$node_dir/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" \
    --location "$recall_servers_dir/azurite" --skipApiVersionCheck --loose \
    >"$recall_servers_dir/azurite.log" 2>&1 &
  recall_server_pids+=($!)
  recall_wait_for Azurite "http://127.0.0.1:$port/devstoreaccount1?comp=list" "$!" "$recall_servers_dir/azurite.log"
  export RECALL_TEST_AZURE_ENDPOINT="http://127.0.0.1:$port/devstoreaccount1"
  export RECALL_TEST_AZURE_ACCOUNT=devstoreaccount1
  # Azurite's fixed, publicly documented development-account key.
  export RECALL_TEST_AZURE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
  export RECALL_TEST_AZURE_CONTAINER=recall-test
  NODE_PATH="$node_dir/node_modules" node -e '
    const { StorageSharedKeyCredential, BlobServiceClient } = require("@azure/storage-blob");
    const env = process.env;
    const credential = new StorageSharedKeyCredential(env.RECALL_TEST_AZURE_ACCOUNT, env.RECALL_TEST_AZURE_KEY);
    new BlobServiceClient(env.RECALL_TEST_AZURE_ENDPOINT, credential)
      .getContainerClient(env.RECALL_TEST_AZURE_CONTAINER).createIfNotExists()
      .catch((err) => { console.error("cannot create the Azurite container:", err.message); process.exit(1); });
  '
  echo "== Azure: Azurite on $RECALL_TEST_AZURE_ENDPOINT"
fi

if recall_skipping s3nocas; then
  echo "== SKIPPED (RECALL_TEST_SKIP): S3 server without conditional writes (s3rver)"
else
  node_dir="$recall_root/target/node"
  if [ ! -x "$node_dir/node_modules/.bin/s3rver" ]; then
    echo "== installing s3rver into target/node"
    mkdir -p "$node_dir"
    (cd "$node_dir" && npm install --no-audit --no-fund --silent s3rver@3.7.1)
  fi
  port=$(recall_free_port)
  mkdir -p "$recall_servers_dir/s3rver"
  "$node_dir/node_modules/.bin/s3rver" --address 127.0.0.1 --port "$port" --silent \
    --directory "$recall_servers_dir/s3rver" --configure-bucket recall-nocas \
    >"$recall_servers_dir/s3rver.log" 2>&1 &
  recall_server_pids+=($!)
  recall_wait_for s3rver "http://127.0.0.1:$port/" "$!" "$recall_servers_dir/s3rver.log"
  export RECALL_TEST_S3NOCAS_ENDPOINT="http://127.0.0.1:$port"
  export RECALL_TEST_S3NOCAS_BUCKET=recall-nocas
  echo "== S3 without conditional writes: s3rver on $RECALL_TEST_S3NOCAS_ENDPOINT"
fi
