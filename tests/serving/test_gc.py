"""The cyclic GC stays out of the request path: per-patient structs are untracked, and the
production worker freezes what it holds after startup."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from drugclf.contract import Patient
from serving.app import create_app_from_env, trim_heap
from serving.inference.schemas import PredictionResponse, Probabilities
from tests.support import PATIENT

from .conftest import Trained


def test_per_patient_structs_are_not_tracked_by_the_gc() -> None:
    patients = msgspec.json.decode(msgspec.json.encode([PATIENT] * 3), type=list[Patient])
    answer = PredictionResponse("DrugY", Probabilities(0.0, 0.0, 0.0, 0.0, 1.0), "v1")
    assert not any(gc.is_tracked(p) for p in patients)
    assert not gc.is_tracked(answer)
    assert not gc.is_tracked(answer.probabilities)


@pytest.fixture
def unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()  # give the test process its objects back


@pytest.mark.usefixtures("unfreeze")
def test_worker_factory_freezes_startup_objects(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRUGCLF_ARTIFACTS_DIR", str(trained.artifacts_dir))
    monkeypatch.setenv("DRUGCLF_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DRUGCLF_ACCESS_LOG", "0")
    gc.unfreeze()
    with TestClient(create_app_from_env()) as client:
        # After the lifespan: the model is loaded, and everything alive was frozen.
        assert client.get("/ready").status_code == 200
        assert gc.get_freeze_count() > 1000
        assert client.post("/predict", json=PATIENT).status_code == 200


def test_trim_heap_gives_freed_pages_back_to_the_system() -> None:
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()
    # 1 KiB blocks come from malloc's heap (pymalloc takes only up to 512 bytes); keeping every
    # 16th alive leaves the freed ones in the middle, where free() alone never returns them.
    blocks = [bytes(1024) + bytes([i % 256]) for i in range(40_000)]
    kept = blocks[::16]
    del blocks
    before = process.memory_info().rss
    assert trim_heap()
    after = process.memory_info().rss
    assert before - after > 10 * 2**20, (before, after)
    assert len(kept) == 2_500
