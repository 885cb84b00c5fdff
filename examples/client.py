"""A client for the drug-classifier server in a few lines (standard library only).

Run the server (``make serve``), then: ``python examples/client.py [http://127.0.0.1:8000]``.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"


def post(path: str, body: object) -> tuple[int, object]:
    """POST JSON, return (status, decoded JSON): errors use the same JSON shape."""
    request = urllib.request.Request(
        BASE + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


patient = {"Age": 45, "Sex": "M", "BP": "HIGH", "Cholesterol": "NORMAL", "Na_to_K": 15.5}
print(post("/predict", patient))  # one patient -> one answer
print(post("/predict", [patient, {**patient, "Na_to_K": 30.1}]))  # a batch -> a list, same order
print(post("/predict", {**patient, "Age": "45"}))  # 422: names the field and what it expects
