"""``POST /explain`` and ``GET /model/explanations``: exact values, /predict's validation, and
versions exported without an explainer (still served, explanations refused with a 409)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from drugclf.artifact import BACKGROUND_FILE, EXPLAINER_FILE, ArtifactError
from drugclf.contract import CLASSES, FEATURE_NAMES
from drugclf.registry import Registry
from serving.app import create_app
from serving.explain import service as explain_service
from serving.explain.service import ExplanationService
from serving.inference.codec import PatientCodec
from serving.inference.holder import ModelHolder
from serving.inference.model import DrugModel
from serving.inference.service import Answer
from serving.settings import Settings
from tests.support import point_current_at

from .conftest import PATIENT, Trained

OLD = "29990101-000000-dddddd"
OTHER = "29990101-000000-eeeeee"
BATCH: list[dict[str, object]] = [
    PATIENT,
    {"Age": 61, "Sex": "F", "BP": "LOW", "Cholesterol": "HIGH", "Na_to_K": 25.4},
    {"Age": 23, "Sex": "M", "BP": "NORMAL", "Cholesterol": "NORMAL", "Na_to_K": 8.2},
]


def _without_explanations(meta: dict[str, object]) -> None:
    meta["explanations"] = None
    meta["explanations_skipped"] = None


def _publish_old(registry: Registry, trained: Trained, clone: Callable[..., str]) -> str:
    """A version as exports made it before explanations: no explainer, no background."""
    clone(registry, trained.version, OLD, edit=_without_explanations)
    (registry.root / OLD / EXPLAINER_FILE).unlink()
    (registry.root / OLD / BACKGROUND_FILE).unlink()
    return OLD


def _adds_up(answer: dict[str, Any]) -> float:
    """The largest |base + sum of values - probability| over the classes."""
    error: float = max(
        abs(
            answer["base_values"][c]
            + sum(answer["values"][name][c] for name in FEATURE_NAMES)
            - answer["probabilities"][c]
        )
        for c in CLASSES
    )
    return error


def test_one_patient_is_explained_exactly(client: TestClient[Litestar]) -> None:
    answer = client.post("/explain", json=PATIENT)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {
        "prediction",
        "probabilities",
        "base_values",
        "values",
        "model_version",
        "status",
    }
    assert list(body["values"]) == list(FEATURE_NAMES)
    assert _adds_up(body) < 1e-6
    predicted = client.post("/predict", json=PATIENT).json()
    for key in ("prediction", "probabilities", "model_version"):
        assert body[key] == predicted[key]
    # Na_to_K 15.5 is above the DrugY threshold (near 15): it raises DrugY.
    assert body["prediction"] == "DrugY" and body["values"]["Na_to_K"]["DrugY"] > 0.1


def test_a_batch_is_explained_in_order_as_each_patient_alone(
    client: TestClient[Litestar],
) -> None:
    answers = client.post("/explain", json=BATCH).json()
    assert len(answers) == len(BATCH)
    for patient, answer in zip(BATCH, answers, strict=True):
        assert answer == client.post("/explain", json=patient).json()
        assert _adds_up(answer) < 1e-6
    # The base values are the model's, the same for everyone.
    assert all(a["base_values"] == answers[0]["base_values"] for a in answers)


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({**PATIENT, "Age": -5}, 422, "validation_error", "Age"),
        ([PATIENT, {**PATIENT, "BP": "X"}], 422, "validation_error", "BP"),
        ([], 422, "batch_size", None),
        (b"{not json", 400, "malformed_json", None),
    ],
)
def test_bodies_are_refused_as_predict_refuses_them(
    client: TestClient[Litestar], body: object, status: int, code: str, field: str | None
) -> None:
    if isinstance(body, bytes):
        explain = client.post("/explain", content=body)
        predict = client.post("/predict", content=body)
    else:
        explain = client.post("/explain", json=body)
        predict = client.post("/predict", json=body)
    assert explain.status_code == predict.status_code == status
    got, expected = explain.json(), predict.json()
    assert got["code"] == expected["code"] == code
    assert got.get("field") == field
    assert {k: v for k, v in got.items() if k != "request_id"} == {
        k: v for k, v in expected.items() if k != "request_id"
    }


def test_a_text_body_is_unsupported(client: TestClient[Litestar]) -> None:
    answer = client.post("/explain", content=b"{}", headers={"content-type": "text/plain"})
    assert answer.status_code == 415 and answer.json()["code"] == "unsupported_media_type"


def test_model_explanations_describe_the_explainer(
    client: TestClient[Litestar], trained: Trained
) -> None:
    info = client.get("/model/explanations").json()
    explained = trained.metadata.explanations
    assert explained is not None
    assert info["model_version"] == trained.version and info["gate_passed"] is True
    assert info["players"] == list(FEATURE_NAMES)
    assert info["background_rows"] == explained.background_rows
    assert info["cells"] == explained.cells
    assert set(info["importance"]) == set(FEATURE_NAMES)


def test_a_version_without_an_explainer_still_predicts_and_answers_409(
    registry_copy: Registry,
    trained: Trained,
    clone_version: Callable[..., str],
    settings_for: Callable[..., Settings],
) -> None:
    point_current_at(registry_copy, _publish_old(registry_copy, trained, clone_version))
    with TestClient(create_app(settings_for(registry_copy.root))) as client:
        assert client.post("/predict", json=PATIENT).status_code == 200
        for answer in (client.post("/explain", json=PATIENT), client.get("/model/explanations")):
            assert answer.status_code == 409
            body = answer.json()
            assert body["code"] == "explanations_unavailable"
            assert f"model {OLD} has no explanations" in body["message"]
            assert "export it again" in body["message"]


def test_hot_reload_swaps_the_explainer_with_the_model(
    registry_copy: Registry,
    trained: Trained,
    clone_version: Callable[..., str],
    settings_for: Callable[..., Settings],
) -> None:
    _publish_old(registry_copy, trained, clone_version)
    with TestClient(create_app(settings_for(registry_copy.root))) as client:
        assert client.post("/explain", json=PATIENT).status_code == 200
        registry_copy.promote(OLD)
        deadline = time.monotonic() + 3
        while client.get("/health").json()["model_version"] != OLD:
            assert time.monotonic() < deadline, "the new version was not picked up"
            time.sleep(0.02)
        assert client.post("/explain", json=PATIENT).json()["code"] == "explanations_unavailable"
        registry_copy.promote(trained.version)
        while client.get("/health").json()["model_version"] != trained.version:
            assert time.monotonic() < deadline + 3, "the old version was not picked up again"
            time.sleep(0.02)
        assert client.post("/explain", json=PATIENT).status_code == 200


def _shifted_base(meta: dict[str, Any]) -> None:
    meta["explanations"]["base_values"]["DrugY"] += 0.1


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("explainer", "is not the explainer its metadata describes"),
        ("background", "cannot read"),
        ("base", "base values are not the ones its metadata records"),
    ],
)
def test_a_damaged_explainer_refuses_the_whole_version(
    registry_copy: Registry,
    trained: Trained,
    clone_version: Callable[..., str],
    damage: str,
    message: str,
) -> None:
    clone_version(
        registry_copy, trained.version, OTHER, _shifted_base if damage == "base" else None
    )
    folder: Path = registry_copy.root / OTHER
    if damage == "explainer":
        (folder / EXPLAINER_FILE).write_bytes(b"\x00 not onnx")
    elif damage == "background":
        (folder / BACKGROUND_FILE).unlink()
    with pytest.raises(ArtifactError, match=message):
        DrugModel.load(folder)


def test_answers_reused_for_a_cell_are_the_ones_computed_for_it(
    trained: Trained,
    settings_for: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Answers are kept per cell of the grid; a full cache is emptied, never wrong."""
    near = [{**PATIENT, "Na_to_K": value} for value in (25.4, 25.41, 25.42)]  # one cell
    with TestClient(create_app(settings_for(trained.artifacts_dir))) as fresh:
        expected = [fresh.post("/explain", json=p).json() for p in [*BATCH, *near]]
    assert expected[-1] == expected[-2] == expected[-3]
    monkeypatch.setattr(explain_service, "ANSWER_CACHE_SIZE", 2)
    with TestClient(create_app(settings_for(trained.artifacts_dir))) as client:
        for _ in range(2):
            assert client.post("/explain", json=[*BATCH, *near]).json() == expected
            assert [client.post("/explain", json=p).json() for p in near] == expected[-3:]


def test_a_reload_during_a_request_never_mixes_versions(
    registry_copy: Registry, trained: Trained, clone_version: Callable[..., str]
) -> None:
    """A request keeps the model (and the answers) it started with, whatever swaps meanwhile."""
    clone_version(registry_copy, trained.version, OTHER)
    holder = ModelHolder(registry_copy)
    holder.load_current()
    service = ExplanationService(holder, PatientCodec(10))
    body = msgspec.json.encode(PATIENT)

    async def overlapping() -> tuple[Answer, Answer]:
        first = asyncio.create_task(service.answer_json(body))
        await asyncio.sleep(0)  # the first request now waits for its cell
        holder.model = DrugModel.load(registry_copy.root / OTHER)  # what a hot reload does
        second = await service.answer_json(body)
        return await first, second

    first, second = asyncio.run(overlapping())
    assert (first.model_version, second.model_version) == (trained.version, OTHER)
    assert msgspec.json.decode(first.body)["model_version"] == trained.version
    assert msgspec.json.decode(second.body)["model_version"] == OTHER


def test_openapi_documents_the_explanation_routes(client: TestClient[Litestar]) -> None:
    document = client.get("/docs/openapi.json").json()
    explain, predict = document["paths"]["/explain"]["post"], document["paths"]["/predict"]["post"]
    assert {"200", "400", "409", "413", "415", "422", "503"} <= set(explain["responses"])
    # The same bodies as /predict, with this app's batch bounds.
    assert explain["requestBody"] == predict["requestBody"]
    conflict = explain["responses"]["409"]["content"]["application/json"]["examples"]
    assert [e["value"]["code"] for e in conflict.values()] == ["explanations_unavailable"]
    info = document["paths"]["/model/explanations"]["get"]
    assert {"200", "409", "503"} <= set(info["responses"])
    answer = document["components"]["schemas"]["ExplanationResponse"]
    assert {"base_values", "values", "probabilities", "prediction"} <= set(answer["properties"])
