"""``loadtests.bench.experiments``: the roles read from ``/metrics``, and the CLI's refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

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
