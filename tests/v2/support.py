"""Requests as ``tritonclient`` builds them, and patients as tensors.

The body and header of a request are made by the client's own encoder
(``tritonclient.http._utils._get_inference_request``, what ``InferenceServerClient.infer`` sends),
so the codec is tested against the exact bytes the real client puts on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
from tritonclient.http import InferInput, InferRequestedOutput
from tritonclient.http._utils import _get_inference_request

from drugclf.contract import FEATURE_NAMES, Patient

DATATYPES = {
    "Age": "INT64",
    "Sex": "BYTES",
    "BP": "BYTES",
    "Cholesterol": "BYTES",
    "Na_to_K": "FP64",
}


def columns(patients: Sequence[Patient | dict[str, Any]]) -> dict[str, list[Any]]:
    """Each feature's values, in the patients' order."""
    rows = [msgspec.to_builtins(p) for p in patients]
    return {name: [row[name] for row in rows] for name in FEATURE_NAMES}


def infer_inputs(
    patients: Sequence[Patient | dict[str, Any]],
    *,
    binary: bool,
    nested: bool = False,
    ratio: str = "FP64",
) -> list[InferInput]:
    """One ``InferInput`` per feature, shape [N] (or [N, 1] when ``nested``)."""
    found = []
    for name, values in columns(patients).items():
        datatype = ratio if name == "Na_to_K" else DATATYPES[name]
        dtype = {"INT64": np.int64, "FP64": np.float64, "FP32": np.float32}.get(datatype, object)
        array = np.array(values, dtype=dtype)
        if nested:
            array = array.reshape(-1, 1)
        tensor = InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        found.append(tensor)
    return found


def client_request(
    inputs: list[InferInput],
    outputs: list[InferRequestedOutput] | None = None,
    request_id: str = "",
) -> tuple[bytes, str | None]:
    """The body and ``Inference-Header-Content-Length`` tritonclient would send."""
    body, json_size = _get_inference_request(
        inputs=inputs,
        request_id=request_id,
        outputs=outputs,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        custom_parameters=None,
    )
    data = body if isinstance(body, bytes) else body.encode()
    return data, None if json_size is None else str(json_size)
