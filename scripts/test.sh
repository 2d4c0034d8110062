#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, starts its own test
# servers on 127.0.0.1, runs every check, stops the servers.
#
#   scripts/test.sh            everything
#   RECALL_TEST_SKIP=python    skip named parts (comma-separated): python, lint, s3, azure,
#                              s3nocas (s3rver, the S3 server without conditional writes),
#                              fulldisk (needs root), schemathesis, chaos (chaos.sh's
#                              CLI and daemon scenarios), daemon (recall's daemon-mode
#                              end-to-end tests)
#
# Exits non-zero if anything fails. A part is skipped only when named in RECALL_TEST_SKIP,
# and then it says so.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
skip=",${RECALL_TEST_SKIP:-},"
skipped() { [[ "$skip" == *",$1,"* ]] && echo "== SKIPPED (RECALL_TEST_SKIP): $1"; }

echo "== toolchain: $(cargo --version)"

if ! skipped lint; then
  echo "== cargo fmt --check"
  cargo fmt --all --check
  echo "== cargo clippy"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

venv="$root/target/pyenv"
if ! skipped python; then
  # Before cargo test: recall-store's python_reader test runs tests/python/layout_reader.py
  # with this Python (boto3, cbor2, blake3).
  echo "== Python packages of tests/python (target/pyenv)"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt \
    -r python/tests/requirements.txt -r tests/python/requirements-flyte.txt
fi

# Object-store servers for recall-store's conformance suite (moto, Azurite, and s3rver for
# the tests of a store without conditional writes: recall-store's s3_nocas, recalld's
# store_without_conditional_writes, recall's capabilities_e2e); stopped on exit.
source scripts/test-servers.sh

echo "== cargo test"
cargo test --workspace

if ! skipped python; then
  echo "== independent Python implementation of docs/KEY-SPEC.md against the frozen vectors"
  "$venv/bin/python" tests/python/keyspec_ref.py tests/vectors/key-v1.json
fi

if ! skipped python; then
  # The Python package (python/, crates/recall-py) built with the dev profile into the same
  # target/ as above, installed editable into target/pyenv; its tests use the recall and
  # recalld binaries cargo test built and the S3 server started above.
  echo "== Python package: maturin develop into target/pyenv"
  (cd python && VIRTUAL_ENV="$venv" "$venv/bin/maturin" develop --quiet)
  echo "== Python package tests (python/tests)"
  (cd python && "$venv/bin/python" -m pytest -q -p no:cacheprovider tests)
fi

if ! skipped python; then
  # recalld as Flyte's datacatalog, driven by flyteidl's own gRPC stubs, over local disk and
  # the S3 server started above (the recalld and recall binaries cargo test built).
  echo "== Flyte datacatalog with flyteidl's stubs (tests/python/test_flyte_datacatalog.py)"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/python/test_flyte_datacatalog.py
fi

if ! skipped chaos; then
  if skipped s3 >/dev/null; then
    echo "== SKIPPED (RECALL_TEST_SKIP=s3): chaos.sh's CLI and daemon scenarios need moto"
  else
    # The store scenarios ran above as recall-store's chaos test. chaos.sh starts, pauses,
    # kills and restarts its own moto, so it is not handed the running one.
    echo "== chaos.sh: CLI and daemon scenarios"
    env -u RECALL_TEST_S3_BUCKET -u RECALL_TEST_S3_ENDPOINT scripts/chaos.sh --skip-store
  fi
fi

if ! skipped schemathesis; then
  RECALLD="${CARGO_TARGET_DIR:-$root/target}/debug/recalld" scripts/schemathesis.sh
fi
echo "== all checks passed"
