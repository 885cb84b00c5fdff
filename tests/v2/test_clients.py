"""The real server process through the real Open Inference Protocol clients (tritonclient).

Both of tritonclient's HTTP clients (the gevent one and the asyncio one) against
``python -m serving``: health, metadata, inference with inline and binary tensors in both
directions, an output subset, a pinned version, and errors as the client reports them. And the
promise of the protocol route: for every dataset row and a batch of random patients, the V2
answer is bit for bit ``/predict``'s.
"""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from tritonclient.utils import InferenceServerException

from drugclf.contract import CLASSES, SAMPLE_PATIENT, Patient
from drugclf.registry import Registry
from loadtests.bench.server import ServerProcess
from loadtests.patients import PatientSource, load_dataset
from tests.support import clone_version
from tests.v2.support import infer_inputs

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MODEL = "drug-classifier"
OTHER_VERSION = "29990101-000000-abcdef"


class Served:
    """The running server: its address, the served version and a second published one."""

    def __init__(self, running: ServerProcess, version: str) -> None:
        self.url = f"127.0.0.1:{running.port}"
        self.base_url = running.base_url
        self.version = version


@pytest.fixture(scope="module")
def served(
    model_copy: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    base = model_copy("v2-clients")
    registry = Registry(base / "artifacts")
    version = registry.current_version()
    assert version is not None
    clone_version(registry, version, OTHER_VERSION)  # published, not served
    log = tmp_path_factory.mktemp("v2-clients-log") / "server.log"
    with ServerProcess(
        registry.root,
        workers=1,
        bench_routes=False,
        extra_env={"DRUGCLF_ACCESS_LOG": "0"},
        log_path=log,
    ) as running:
        yield Served(running, version)


@pytest.fixture
def client(served: Served) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(served.url) as connected:
        yield connected


def predict(served: Served, patients: list[Patient]) -> list[dict[str, Any]]:
    """``POST /predict`` for a batch: the answers to compare with."""
    request = urllib.request.Request(
        f"{served.base_url}/predict",
        data=msgspec.json.encode(patients),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answers: list[dict[str, Any]] = json.loads(response.read())
    return answers


def labels_of(result: triton.InferResult) -> list[str]:
    values = result.as_numpy("label")
    assert values is not None
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]


def probabilities_of(result: triton.InferResult) -> np.ndarray[Any, np.dtype[np.float32]]:
    values = result.as_numpy("probabilities")
    assert values is not None and values.dtype == np.float32
    probabilities: np.ndarray[Any, np.dtype[np.float32]] = values
    return probabilities


def outputs(binary: bool) -> list[triton.InferRequestedOutput]:
    return [
        triton.InferRequestedOutput("label", binary_data=binary),
        triton.InferRequestedOutput("probabilities", binary_data=binary),
    ]


def test_health_and_metadata(client: triton.InferenceServerClient, served: Served) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, served.version)
    assert client.is_model_ready(MODEL, OTHER_VERSION)
    assert not client.is_model_ready("resnet")
    assert not client.is_model_ready(MODEL, "20000101-000000-000000")
    server = client.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"]
    metadata = client.get_model_metadata(MODEL)
    assert metadata["platform"] == "onnx_onnxv1"
    assert set(metadata["versions"]) == {served.version, OTHER_VERSION}
    inputs = {tensor["name"]: tensor for tensor in metadata["inputs"]}
    assert inputs["Age"]["datatype"] == "INT64" and inputs["Age"]["shape"] == [-1, 1]
    assert inputs["BP"]["datatype"] == "BYTES"
    out = {tensor["name"]: tensor for tensor in metadata["outputs"]}
    assert out["probabilities"]["shape"] == [-1, len(CLASSES)]
    assert out["probabilities"]["parameters"]["classes"] == ",".join(CLASSES)
    assert client.get_model_metadata(MODEL, OTHER_VERSION)["name"] == MODEL


@pytest.mark.parametrize("binary", [True, False])
def test_infer_with_the_client_s_defaults_and_inline(
    client: triton.InferenceServerClient, served: Served, binary: bool
) -> None:
    patients = [
        SAMPLE_PATIENT,
        Patient(Age=61, Sex="F", BP="LOW", Cholesterol="HIGH", Na_to_K=25.4),
    ]
    result = client.infer(
        MODEL,
        infer_inputs(patients, binary=binary),
        outputs=outputs(binary),
        request_id="r-1",
        headers={"X-Request-ID": "v2-test-1"},
    )
    response = result.get_response()
    assert response["model_name"] == MODEL
    assert response["model_version"] == served.version
    assert response["id"] == "r-1"
    expected = predict(served, patients)
    assert labels_of(result) == [a["prediction"] for a in expected]
    # No outputs named: tritonclient asks for everything as binary (binary_data_output).
    default = client.infer(MODEL, infer_inputs(patients, binary=binary))
    assert labels_of(default) == labels_of(result)
    assert probabilities_of(default).tobytes() == probabilities_of(result).tobytes()


def test_a_requested_output_subset_and_a_pinned_version(
    client: triton.InferenceServerClient,
) -> None:
    inputs = infer_inputs([SAMPLE_PATIENT], binary=True)
    only = client.infer(MODEL, inputs, outputs=[triton.InferRequestedOutput("probabilities")])
    assert [o["name"] for o in only.get_response()["outputs"]] == ["probabilities"]
    assert only.as_numpy("label") is None
    pinned = client.infer(MODEL, inputs, model_version=OTHER_VERSION)
    assert pinned.get_response()["model_version"] == OTHER_VERSION


@pytest.mark.parametrize(
    ("call", "status", "message"),
    [
        (
            lambda c: c.infer("resnet", infer_inputs([SAMPLE_PATIENT], binary=True)),
            "404",
            "unknown model",
        ),
        (
            lambda c: c.infer(
                MODEL,
                infer_inputs([SAMPLE_PATIENT], binary=True),
                model_version="20000101-000000-000000",
            ),
            "404",
            "no published version",
        ),
        (
            lambda c: c.infer(
                MODEL,
                infer_inputs([{**msgspec.to_builtins(SAMPLE_PATIENT), "Age": 150}], binary=True),
            ),
            "400",
            "input 'Age' element 0: must be a whole number from 0 to 120 (got 150)",
        ),
        (
            lambda c: c.infer(
                MODEL,
                infer_inputs(
                    [{**msgspec.to_builtins(SAMPLE_PATIENT), "BP": "ELEVATED"}], binary=False
                ),
            ),
            "400",
            "input 'BP' element 0: must be one of HIGH, LOW, NORMAL",
        ),
        (
            lambda c: c.infer(MODEL, infer_inputs([SAMPLE_PATIENT], binary=True)[:4]),
            "400",
            "input 'Na_to_K' is missing",
        ),
    ],
)
def test_errors_through_the_client(
    client: triton.InferenceServerClient,
    call: Callable[[triton.InferenceServerClient], object],
    status: str,
    message: str,
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        call(client)
    assert caught.value.status() == status
    assert message in caught.value.message()


def test_the_asyncio_client(served: Served) -> None:
    async def scenario() -> None:
        async with triton_aio.InferenceServerClient(served.url) as client:
            assert await client.is_server_live()
            assert await client.is_server_ready()
            assert await client.is_model_ready(MODEL)
            metadata = await client.get_model_metadata(MODEL)
            assert metadata["platform"] == "onnx_onnxv1"
            for binary in (True, False):
                result = await client.infer(
                    MODEL, infer_inputs([SAMPLE_PATIENT], binary=binary), outputs=outputs(binary)
                )
                assert labels_of(result) == [predict(served, [SAMPLE_PATIENT])[0]["prediction"]]
            with pytest.raises(InferenceServerException) as caught:
                await client.infer("resnet", infer_inputs([SAMPLE_PATIENT], binary=True))
            assert caught.value.status() == "404"

    # A thread of its own: the UI tests' session-wide Playwright keeps an event loop running in
    # this one when the whole suite runs, and asyncio.run refuses to start beside it.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, scenario()).result()


def _dataset_and_random() -> list[Patient]:
    rows = [msgspec.convert(p, Patient) for p in load_dataset()]
    source = PatientSource(random.Random(15), load_dataset(), dataset_share=0.0)
    return rows + [msgspec.convert(source.one(), Patient) for _ in range(500)]


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("ratio", ["FP64", "FP32"])
def test_v2_answers_are_predict_s_bit_for_bit(
    client: triton.InferenceServerClient, served: Served, binary: bool, ratio: str
) -> None:
    patients = _dataset_and_random()
    if ratio == "FP32":  # /predict is given the float32 value the V2 client sent
        patients = [
            msgspec.structs.replace(p, Na_to_K=float(np.float32(p.Na_to_K))) for p in patients
        ]
    expected = predict(served, patients)
    # As one batch, and one patient at a time for a sample (the micro-batched path).
    result = client.infer(
        MODEL, infer_inputs(patients, binary=binary, ratio=ratio), outputs=outputs(binary)
    )
    assert labels_of(result) == [a["prediction"] for a in expected]
    want = np.array([[a["probabilities"][c] for c in CLASSES] for a in expected], np.float32)
    assert probabilities_of(result).view(np.uint32).tolist() == want.view(np.uint32).tolist()
    for index in range(0, len(patients), 25):
        one = client.infer(
            MODEL,
            infer_inputs([patients[index]], binary=binary, ratio=ratio),
            outputs=outputs(binary),
        )
        assert labels_of(one) == [expected[index]["prediction"]]
        assert probabilities_of(one).view(np.uint32).tolist() == [
            want[index].view(np.uint32).tolist()
        ]
