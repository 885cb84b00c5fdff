"""``loadtests.bench.experiments``: the roles read from ``/metrics``, and the CLI's refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from drugclf.registry import Registry
from loadtests.bench import experiments

METRICS = """\
# HELP drugclf_version_predictions_total Predictions per version and role.
drugclf_version_predictions_total{version="a",role="primary"} 90.0
drugclf_version_predictions_total{version="b",role="candidate"} 10.0
drugclf_version_predictions_total{version="a",role="primary"} 80.0
drugclf_version_predictions_total{version="c",role="shadow"} 170.0
drugclf_predictions_total{class="DrugY"} 180.0
"""


def test_roles_served_sums_every_worker_s_series_by_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(experiments, "metrics_text", lambda port: METRICS)
    assert experiments.roles_served(1) == {"primary": 170.0, "candidate": 10.0, "shadow": 170.0}


def test_no_published_model_is_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert experiments.main(["--artifacts-dir", str(tmp_path / "none"), "--repeats", "1"]) == 2
    assert "error: no model published" in capsys.readouterr().err


def test_the_shadow_path_is_measured_without_a_server(served_artifacts: Path) -> None:
    path_us, model_us = experiments.shadow_path_cpu(Registry(served_artifacts), 2, 1)
    assert path_us > model_us > 0  # the thread's work includes its model calls


def test_the_shadow_path_option_prints_one_line(
    served_artifacts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # restored after the test
    monkeypatch.setattr(experiments, "shadow_path_cpu", lambda registry: (8.5, 5.3))
    assert experiments.main(["--artifacts-dir", str(served_artifacts), "--shadow-path"]) == 0
    assert capsys.readouterr().out.startswith(
        "shadow thread CPU per shadowed request: 8.5 µs, of which the model calls 5.3 µs"
    )
