"""The OpenAPI document, in process: what clients (and the schemathesis run) rely on.

``test_openapi_conformance.py`` checks the document against the real server with generated
requests (slow); these tests pin the properties that make it exact, in a second.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.app import create_app
from serving.lifecycle.requests import WAIT_PATTERN, WAIT_WORDS
from serving.settings import Settings

from .conftest import Trained

Client = TestClient[Litestar]
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
# The Open Inference Protocol (V2) routes answer errors in the protocol's shape.
INFERENCE_ERROR_BODY = {"$ref": "#/components/schemas/InferenceErrorBody"}
OWN_503: Final = ("/ready", "/v2/health/ready")
"""Readiness answers its own body with its 503."""


@pytest.fixture(scope="module")
def document(client: Client) -> dict[str, Any]:
    answer = client.get("/docs/openapi.json")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def test_every_error_answer_is_the_error_body_with_one_example_per_code(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations(document):
        for status, answer in operation["responses"].items():
            if int(status) < 400 or path in OWN_503:
                continue
            content = answer["content"]["application/json"]
            examples = content["examples"].values()
            if path.startswith("/v2"):
                assert content["schema"] == INFERENCE_ERROR_BODY, (method, path, status)
                codes = [example["summary"] for example in examples]
                assert all(set(example["value"]) == {"error"} for example in examples)
            else:
                assert content["schema"] == ERROR_BODY, (method, path, status)
                codes = [example["value"]["code"] for example in examples]
                assert all(example["value"]["status"] == "error" for example in examples)
            assert codes, (method, path, status)
            for code in codes:
                assert f"`{code}`" in answer["description"], (method, path, status, code)


def test_no_answer_keeps_litestars_own_error_shape(document: dict[str, Any]) -> None:
    assert '"detail"' not in json.dumps(document)


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/predict", "post", {"200", "400", "413", "415", "422", "503"}),
        ("/predictions", "get", {"200", "400", "401", "403", "404", "503"}),
        ("/monitoring/summary", "get", {"200", "400", "404", "503"}),
        ("/retrain", "post", {"200", "202", "400", "401", "403", "409", "413", "422", "500"}),
        ("/models/{version}/promote", "post", {"200", "401", "403", "404", "422"}),
        ("/models/rollback", "post", {"200", "401", "403", "409", "422"}),
        ("/jobs/{job_id}", "get", {"200", "404"}),
        ("/routing", "get", {"200", "401", "403"}),
        ("/routing", "put", {"200", "400", "401", "403", "415", "422"}),
        ("/routing", "delete", {"200", "401", "403"}),
        ("/v2/models/{model_name}/infer", "post", {"200", "400", "404", "413", "503"}),
        ("/v2/models/{model_name}/versions/{model_version}", "get", {"200", "404"}),
    ],
)
def test_routes_document_what_they_answer(
    document: dict[str, Any], path: str, method: str, statuses: set[str]
) -> None:
    assert statuses <= set(document["paths"][path][method]["responses"])


def test_bodies_refuse_unknown_fields(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["Patient"]["additionalProperties"] is False
    assert schemas["RetrainRequest"]["additionalProperties"] is False


def _batch_schema(document: dict[str, Any]) -> dict[str, Any]:
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    (batch,) = [option for option in body["schema"]["oneOf"] if option.get("type") == "array"]
    return batch  # type: ignore[no-any-return]


def test_a_batch_holds_one_to_the_configured_maximum(
    document: dict[str, Any], trained: Trained
) -> None:
    assert (_batch_schema(document)["minItems"], _batch_schema(document)["maxItems"]) == (1, 1000)
    app = create_app(Settings(artifacts_dir=trained.artifacts_dir, max_batch_size=7))
    with TestClient(app) as small:
        assert _batch_schema(small.get("/docs/openapi.json").json())["maxItems"] == 7
        # The Swagger page embeds the same document.
        assert '"maxItems":7' in small.get("/docs").text


def test_metrics_is_documented_as_prometheus_text(document: dict[str, Any]) -> None:
    (media_type,) = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert media_type.startswith("text/plain; version=")


def test_wait_states_what_it_accepts(document: dict[str, Any]) -> None:
    (wait,) = document["paths"]["/retrain"]["post"]["parameters"]
    assert wait["name"] == "wait" and wait["schema"]["pattern"] == WAIT_PATTERN
    for word in WAIT_WORDS:
        assert re.fullmatch(WAIT_PATTERN, word.upper())
    assert not re.fullmatch(WAIT_PATTERN, "maybe")


def test_times_are_date_times(document: dict[str, Any]) -> None:
    for path in ("/predictions", "/monitoring/summary"):
        parameters = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
        for name in ("since", "until"):
            assert parameters[name]["schema"]["format"] == "date-time"


def test_admin_routes_declare_the_bearer_scheme(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["AdminToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    admin = {
        (path, method)
        for path, method, operation in operations(document)
        if operation.get("security") == [{"AdminToken": []}]
    }
    assert admin == {
        ("/retrain", "POST"),
        ("/models/{version}/promote", "POST"),
        ("/models/rollback", "POST"),
        ("/routing", "GET"),
        ("/routing", "PUT"),
        ("/routing", "DELETE"),
    }


def test_links_lead_from_an_answer_to_the_next_call(document: dict[str, Any]) -> None:
    links = document["paths"]["/models"]["get"]["responses"]["200"]["links"]
    promote = links["promote"]
    assert promote["operationRef"] == "#/paths/~1models~1{version}~1promote/post"
    assert promote["parameters"] == {"version": "$response.body#/current_version"}
    job = document["paths"]["/retrain"]["post"]["responses"]["202"]["links"]["job"]
    assert job["parameters"] == {"job_id": "$response.body#/job_id"}
    for _path, _method, operation in operations(document):
        for answer in operation["responses"].values():
            for link in answer.get("links", {}).values():
                target_path = link["operationRef"].split("/")[2].replace("~1", "/")
                target_method = link["operationRef"].split("/")[3]
                assert target_method in document["paths"][target_path], link
