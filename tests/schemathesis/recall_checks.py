"""Schemathesis checks of our own, loaded by scripts/schemathesis.sh (SCHEMATHESIS_HOOKS).

Besides schemathesis' built-in checks (no 5xx, responses match the schema, ...), recalld
promises that every 4xx names the problem: a JSON body whose "error" is a non-empty message,
or, for a lookup that found no usable entry (404), a cache status with its reason.
"""

import json

import schemathesis


@schemathesis.check
def client_errors_name_the_problem(ctx, response, case):
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{response.status_code} answer is not JSON: {response.content[:200]!r}"
        )
    if not isinstance(body, dict):
        raise AssertionError(f"{response.status_code} answer is not a JSON object: {body!r}")
    if response.status_code == 404 and str(body.get("status", "")).startswith("CACHE_"):
        # A lookup that found no usable entry: its cache status and why.
        if not body.get("reason"):
            raise AssertionError(f"a {body['status']} without a reason: {body!r}")
        return None
    message = body.get("error")
    if not isinstance(message, str) or len(message.strip()) < 8:
        raise AssertionError(
            f"{response.status_code} answer does not say what was wrong: {body!r}"
        )
    return None
