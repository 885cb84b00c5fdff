"""The shadow thread's work, without HTTP: one model call, one count, one log record per burst."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from drugclf.contract import SAMPLE_PATIENT, Patient
from serving.experiments import shadows
from serving.experiments.shadows import ShadowQueue
from serving.http.metrics import ServerMetrics
from serving.inference.model import DrugModel
from tests.experiments.conftest import Versions

OTHER = Patient(Age=61, Sex="F", BP="LOW", Cholesterol="HIGH", Na_to_K=25.4)
YOUNG = Patient(Age=23, Sex="M", BP="HIGH", Cholesterol="NORMAL", Na_to_K=8.1)


class Burst:
    """What one ``record_burst`` call received."""

    def __init__(
        self,
        version: str,
        request_ids: list[str | None],
        batch_sizes: list[int],
        labels: Sequence[str],
        probabilities: npt.NDArray[np.float32],
        role: str,
    ) -> None:
        self.version = version
        self.request_ids = request_ids
        self.batch_sizes = batch_sizes
        self.labels = list(labels)
        self.probabilities = probabilities
        self.role = role


class BurstRecorder:
    """A prediction log that keeps what it is given; a per-request record is a failure."""

    def __init__(self) -> None:
        self.bursts: list[Burst] = []

    def record(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("shadows record a burst per model call, not a row per request")

    def record_burst(
        self,
        version: str,
        request_ids: list[str | None],
        batch_sizes: list[int],
        labels: Sequence[str],
        probabilities: npt.NDArray[np.float32],
        seconds: float,
        role: str = "shadow",
    ) -> None:
        assert seconds >= 0
        self.bursts.append(Burst(version, request_ids, batch_sizes, labels, probabilities, role))

    def answers(self) -> dict[tuple[str, str | None], list[str]]:
        """Each (version, request id)'s labels; a request logged twice fails."""
        found: dict[tuple[str, str | None], list[str]] = {}
        for burst in self.bursts:
            assert burst.role == "shadow"
            assert len(burst.request_ids) == len(burst.batch_sizes)
            assert sum(burst.batch_sizes) == len(burst.labels) == len(burst.probabilities)
            start = 0
            for request_id, size in zip(burst.request_ids, burst.batch_sizes, strict=True):
                key = (burst.version, request_id)
                assert key not in found, f"{key} logged twice"
                found[key] = burst.labels[start : start + size]
                start += size
        return found


def _models(versions: Versions) -> tuple[DrugModel, DrugModel]:
    root = versions.registry.root
    return DrugModel.load(root / versions.shadow), DrugModel.load(root / versions.primary)


def _sample(metrics: ServerMetrics, name: str, version: str) -> float:
    metrics.flush()  # what the hot path tallied, as a render would
    value = metrics.registry.get_sample_value(name, {"version": version, "role": "shadow"})
    return 0.0 if value is None else value


REQUESTS: dict[str, list[Patient]] = {
    "r1": [SAMPLE_PATIENT],
    "r2": [OTHER, YOUNG, SAMPLE_PATIENT],
    "r3": [YOUNG],
    "r4": [OTHER, OTHER],
}


@pytest.mark.parametrize("per_call", [1000, 3])
def test_every_shadow_answer_of_a_burst_is_logged_once_and_counted_per_patient(
    versions: Versions, monkeypatch: pytest.MonkeyPatch, per_call: int
) -> None:
    # per_call 3: the burst is cut into several model calls, each its own log record.
    monkeypatch.setattr(shadows, "MAX_PATIENTS_PER_CALL", per_call)
    models = shadow, primary = _models(versions)
    metrics = ServerMetrics()
    recorder = BurstRecorder()
    queue = ShadowQueue(metrics, recorder, metrics.registry)
    for request_id, patients in REQUESTS.items():
        # r2 and r4 were answered by a candidate: the primary listens to them too.
        listeners = (shadow, primary) if request_id in {"r2", "r4"} else (shadow,)
        assert queue.offer(listeners, patients, request_id)
    assert queue.offer((shadow,), OTHER, None)  # one patient, no request id
    queue.drain()
    assert queue.waiting == 0

    expected = {
        (model.version, request_id): model.predict(patients).labels
        for request_id, patients in [*REQUESTS.items(), (None, [OTHER])]
        for model in (shadow, primary)
        if model is shadow or request_id in {"r2", "r4"}
    }
    assert recorder.answers() == expected
    calls = {m.version: sum(b.version == m.version for b in recorder.bursts) for m in models}
    patients_by_version = {
        shadow.version: sum(map(len, REQUESTS.values())) + 1,
        primary.version: len(REQUESTS["r2"]) + len(REQUESTS["r4"]),
    }
    for version, rows in patients_by_version.items():
        assert _sample(metrics, "drugclf_version_predictions_total", version) == rows
        # One latency observation per model call, not one per request.
        count = _sample(metrics, "drugclf_version_prediction_duration_seconds_count", version)
        assert count == calls[version]
    if per_call == 1000:
        assert calls[shadow.version] == calls[primary.version] == 1
    else:
        assert calls[shadow.version] == 4  # r1 | r2 | r3 and r4 | the last one


def test_a_failing_log_costs_neither_the_queue_nor_the_counts(versions: Versions) -> None:
    shadow, _ = _models(versions)
    metrics = ServerMetrics()

    class Broken(BurstRecorder):
        def record_burst(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("the log is gone")

    queue = ShadowQueue(metrics, Broken(), metrics.registry)
    queue.offer((shadow,), [SAMPLE_PATIENT, OTHER], "r1")
    queue.drain()  # logged and swallowed: a shadow never reaches the data plane
    assert queue.waiting == 0
    assert _sample(metrics, "drugclf_version_predictions_total", shadow.version) == 2
