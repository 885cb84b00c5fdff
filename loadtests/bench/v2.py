"""Open Inference Protocol (V2) request bodies for the benchmark, and a full check of an answer.

The same patients as the ``/predict`` bodies, as V2 tensors: inline JSON, or Triton's binary
tensor data (the JSON header, then each input's bytes; ``Inference-Header-Content-Length``
says where the header ends), with the outputs asked for in the same form. Built here, not with
tritonclient: the load generator only replays bytes, and the tests check that these bytes are
the ones tritonclient sends.
"""

from __future__ import annotations

import http.client
import math
import struct
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from drugclf.contract import CLASSES, FEATURE_NAMES
from loadtests.bench.server import HOST
from loadtests.checks import PROBABILITY_TOLERANCE, WrongAnswerError

INFER_PATH: Final = "/v2/models/drug-classifier/infer"
HEADER_LENGTH: Final = "Inference-Header-Content-Length"
DATATYPES: Final = {"Age": "INT64", "Na_to_K": "FP64"}
"""The numeric inputs' datatypes; the others are BYTES."""
_U32: Final = struct.Struct("<I")


class V2Body(msgspec.Struct, frozen=True):
    """One request: its bytes, and the JSON header's length when binary data follows it."""

    body: bytes
    header_length: int | None = None

    def headers(self) -> dict[str, str]:
        """The request's headers."""
        headers = {"Content-Type": "application/json"}
        if self.header_length is not None:
            headers[HEADER_LENGTH] = str(self.header_length)
        return headers


def _binary(name: str, values: Sequence[Any]) -> bytes:
    if name == "Age":
        return struct.pack(f"<{len(values)}q", *values)
    if name == "Na_to_K":
        return struct.pack(f"<{len(values)}d", *values)
    return b"".join(_U32.pack(len(v.encode())) + v.encode() for v in values)


def v2_body(patients: Sequence[dict[str, Any]], *, binary: bool) -> V2Body:
    """The V2 request for ``patients`` (dicts with the contract's fields), JSON or binary."""
    columns = {name: [p[name] for p in patients] for name in FEATURE_NAMES}
    outputs = [
        {"name": name, "parameters": {"binary_data": binary}} for name in ("label", "probabilities")
    ]
    inputs: list[dict[str, Any]] = []
    tails: list[bytes] = []
    for name, values in columns.items():
        tensor: dict[str, Any] = {
            "name": name,
            "shape": [len(values)],
            "datatype": DATATYPES.get(name, "BYTES"),
        }
        if binary:
            data = _binary(name, values)
            tensor["parameters"] = {"binary_data_size": len(data)}
            tails.append(data)
        else:
            tensor["data"] = values
        inputs.append(tensor)
    header = msgspec.json.encode({"inputs": inputs, "outputs": outputs})
    if not binary:
        return V2Body(header)
    return V2Body(header + b"".join(tails), len(header))


def post_v2(
    port: int, request: V2Body, path: str = INFER_PATH
) -> tuple[int, dict[str, str], bytes]:
    """One V2 request to the local server: status, headers and body."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("POST", path, body=request.body, headers=request.headers())
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _read_bytes_tensor(data: bytes) -> list[str]:
    values, offset = [], 0
    while offset < len(data):
        (size,) = _U32.unpack_from(data, offset)
        values.append(data[offset + 4 : offset + 4 + size].decode())
        offset += 4 + size
    return values


def decode_v2_answer(headers: dict[str, str], body: bytes) -> tuple[list[str], list[list[float]]]:
    """Labels and probability rows of a V2 answer (inline or binary outputs)."""
    length = next((int(v) for k, v in headers.items() if k.lower() == HEADER_LENGTH.lower()), None)
    header = msgspec.json.decode(body if length is None else body[:length])
    tail = b"" if length is None else body[length:]
    found: dict[str, Any] = {}
    for output in header["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            found[output["name"]] = output["data"]
            continue
        data, tail = tail[:size], tail[size:]
        if output["datatype"] == "BYTES":
            found[output["name"]] = _read_bytes_tensor(data)
        else:
            found[output["name"]] = list(struct.unpack(f"<{size // 4}f", data))
    k = len(CLASSES)
    flat = found["probabilities"]
    return found["label"], [flat[i * k : i * k + k] for i in range(len(flat) // k)]


def check_v2_answer(status: int, headers: dict[str, str], body: bytes, patients: int) -> None:
    """A V2 answer must be 200 with one known label and one probability row per patient.

    Raises:
        WrongAnswerError: what is wrong.
    """
    if status != 200:
        raise WrongAnswerError(f"HTTP {status}, expected 200: {body[:200]!r}")
    labels, rows = decode_v2_answer(headers, body)
    if len(labels) != patients or len(rows) != patients:
        raise WrongAnswerError(f"{len(labels)} labels, {len(rows)} rows for {patients} patients")
    for index, (label, row) in enumerate(zip(labels, rows, strict=True)):
        if label not in CLASSES:
            raise WrongAnswerError(f"patient {index}: label {label!r} is not a class")
        if abs(math.fsum(row) - 1.0) > PROBABILITY_TOLERANCE:
            raise WrongAnswerError(f"patient {index}: probabilities sum to {math.fsum(row)}")
