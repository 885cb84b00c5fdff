"""schemathesis hooks of ``test_openapi_conformance.py``: the refusals OpenAPI cannot state.

The schemathesis CLI loads this module through ``SCHEMATHESIS_HOOKS``. Everything else the
server does is in the document, so the hook drops a failure only when it is "a request the
document allows was refused" *and* the refusal is one of these two, recognised by the server's
own error body:

- ``since`` must be before ``until`` on ``/predictions`` and ``/monitoring/summary``: a
  constraint between two parameters, which OpenAPI has no way to write (the 400 is documented);
- a whole number written as a float (``"Age": 45.0``): JSON Schema counts 45.0 as an integer,
  the server refuses it on purpose (``docs/serving.md``: no type coercion), and no schema
  keyword tells the two apart;
- a traffic policy refused by ``PUT /routing`` (422 naming a version, the weights or the sticky
  key): every version must be published and have passed parity, the primary must be the served
  version, a version appears once and the weights sum to at most 1, facts of the registry or
  between fields that no schema states;
- a tensor refused by the Open Inference Protocol's infer routes (their 400 ``{"error": ...}``):
  the protocol's request schema allows any tensors, the model takes five named ones whose
  shapes agree and whose JSON header length matches the body, constraints no schema states.

The run's report counts what was dropped ("dropped by ``filter_failure``").
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis

REJECTED_POSITIVE_DATA = "ST202"
V2_INFER = re.compile(r"^/v2/models/\{model_name\}(/versions/\{model_version\})?/infer$")


def _error_body(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _sent(body: object, index: object, field: object) -> object:
    if isinstance(index, int):
        body = body[index] if isinstance(body, list) and index < len(body) else None
    return body.get(field) if isinstance(body, dict) and isinstance(field, str) else None


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure except the two documented refusals above."""
    if failure.code != REJECTED_POSITIVE_DATA:
        return True
    error = _error_body(response)
    if V2_INFER.match(case.path) and response.status_code == 400 and set(error) == {"error"}:
        return False
    if case.path == "/routing" and response.status_code == 422 and error.get("field"):
        return False
    if error.get("code") != "validation_error":
        return True
    if error.get("field") == "since" and error.get("expected") == "a time before until":
        return False
    expected = error.get("expected")
    if isinstance(expected, str) and expected.startswith("an integer"):
        value = _sent(case.body, error.get("index"), error.get("field"))
        if isinstance(value, float) and value.is_integer():
            return False
    return True
