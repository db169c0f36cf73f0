"""Hooks for the schemathesis run against floodgate (loaded through SCHEMATHESIS_HOOKS).

An Idempotency-Key names one request: sent again with another body it is refused with 422
IDEMPOTENCY_KEY_REUSED, as the IETF Idempotency-Key draft says, and the API document says so.
A JSON Schema cannot say "this header's value belongs to one body", so generated requests reuse
a key across bodies, and every such request is a reuse, not a valid request refused. This hook
keeps each schema-valid key as generated and binds it to its body (a digest of the body
replaces the key's tail), so that a repeated key is a repeated request, which must be answered
with the original job. Keys that break the schema are left as they are, for the negative checks.
"""

import hashlib
import json
import re

import schemathesis

# The header's pattern in the API document.
KEY = re.compile(r'^("[\x20\x21\x23-\x5b\x5d-\x7e]{1,248}"|[\x21\x23-\x7e]{1,248})$')


def bound(key, body):
    digest = hashlib.sha256(
        json.dumps(body, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    if key.startswith('"'):
        return '"' + key[1:-1][:231] + "." + digest + '"'
    return key[:231] + "." + digest


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    for name, value in list((case.headers or {}).items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and KEY.match(value):
            case.headers[name] = bound(value, case.body)
