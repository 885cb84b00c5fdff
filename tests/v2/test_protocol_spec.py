"""The real server against the Open Inference Protocol's own OpenAPI description (schemathesis).

The specification's ``open_inference_rest.yaml`` (kserve/open-inference-protocol,
``specification/protocol/``, Apache-2.0) is not kept in this repository: the test reads it from
``$DRUGCLF_OIP_SPEC`` or from ``../shared/data/open_inference_rest.yaml`` beside the checkout,
and is skipped, saying so, when neither exists. It was run against the specification at commit
``d49cc23f89d709d87b210ef9449e273ae243984e`` (docs/v2.md).

What the test changes in the description, and why (nothing else):

- its paths write parameters as ``${MODEL_NAME}``; OpenAPI templates are ``{MODEL_NAME}``;
- ``MODEL_NAME`` and ``MODEL_VERSION`` are pinned to this server's name and served version
  (``enum``): the description documents no 404, so any other name would only test that;
- schemathesis generates requests the description allows (``--mode positive``) and checks every
  answer: no server error, a documented status, the documented content type, the documented
  schema. Not ``positive_data_acceptance``: the description allows any tensors, and this
  model takes five named ones, so a random tensor is rightly a (documented) 400.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import jsonschema
import msgspec
import pytest
import yaml

from drugclf.contract import SAMPLE_PATIENT
from drugclf.registry import Registry
from loadtests.bench.server import ServerProcess
from tests.support import ROOT
from tests.v2.support import DATATYPES

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SPEC_ENV: Final = "DRUGCLF_OIP_SPEC"
SHARED_SPEC: Final = ROOT.parent / "shared" / "data" / "open_inference_rest.yaml"
CHECKS: Final = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)
MAX_EXAMPLES: Final = 40
RUN_TIMEOUT_S: Final = 240


def specification() -> Path | None:
    """Where the protocol's description is on this machine, if it is."""
    given = os.environ.get(SPEC_ENV)
    for candidate in (Path(given) if given else None, SHARED_SPEC):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def pinned(text: str, model: str, version: str) -> dict[str, Any]:
    """The description with OpenAPI path templates, its path parameters pinned to ours."""
    document: dict[str, Any] = yaml.safe_load(text.replace("${", "{"))
    values = {"MODEL_NAME": model, "MODEL_VERSION": version}
    for item in document["paths"].values():
        for parameter in item.get("parameters", []):
            if parameter.get("in") == "path" and parameter["name"] in values:
                parameter["schema"] = {"type": "string", "enum": [values[parameter["name"]]]}
    return document


@pytest.fixture(scope="module")
def server(
    model_copy: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    base = model_copy("v2-protocol-spec")
    version = Registry(base / "artifacts").current_version()
    assert version is not None
    log = tmp_path_factory.mktemp("v2-protocol-spec-log") / "server.log"
    with ServerProcess(
        base / "artifacts",
        workers=1,
        bench_routes=False,
        extra_env={"DRUGCLF_ACCESS_LOG": "0"},
        log_path=log,
    ) as running:
        yield running.base_url, version


def test_the_server_answers_as_the_protocol_s_description_says(
    server: tuple[str, str], tmp_path: Path
) -> None:
    found = specification()
    if found is None:
        pytest.skip(f"open_inference_rest.yaml is not on this machine (${SPEC_ENV}, {SHARED_SPEC})")
    base_url, version = server
    document = pinned(found.read_text(), "drug-classifier", version)
    described = tmp_path / "open_inference_rest.yaml"
    described.write_text(yaml.safe_dump(document))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "run",
        str(described),
        "--url",
        base_url,
        "--mode",
        "positive",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "15",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-12_000:]
    assert re.search(r"Tested: +6\b", report), report[-4_000:]
    # Generated tensors are nearly all refused (rightly): one valid request, its answer checked
    # against the description's own inference_response schema.
    inputs = [
        {"name": name, "shape": [1], "datatype": DATATYPES[name], "data": [value]}
        for name, value in msgspec.to_builtins(SAMPLE_PATIENT).items()
    ]
    request = urllib.request.Request(
        f"{base_url}/v2/models/drug-classifier/versions/{version}/infer",
        data=msgspec.json.encode({"id": "spec", "inputs": inputs}),
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    schema = {"$ref": "#/components/schemas/inference_response", **document}
    jsonschema.validate(answer, schema)
    assert answer["id"] == "spec" and answer["model_version"] == version
