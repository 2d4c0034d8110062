"""Fixtures shared by the Flyte tests: `backend`, each test once over a local directory and
once over S3 (RECALL_TEST_SKIP=s3 skips the S3 run, reported as skipped)."""

import pytest

from flyte_recalld import SKIP, Backend


@pytest.fixture(params=["file", "s3"])
def backend(request, tmp_path):
    if request.param in SKIP:
        pytest.skip(f"RECALL_TEST_SKIP={request.param}")
    return Backend(request.param, tmp_path)
