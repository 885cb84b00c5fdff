"""/explain in the benchmarks: the answer check, the report's target row, the standalone
``python -m loadtests.bench.explain`` table, and a quick real run against the server."""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest

from drugclf.artifact import read_metadata
from drugclf.contract import CLASSES, FEATURE_NAMES
from drugclf.registry import Registry
from loadtests.bench import explain, http_bench
from loadtests.bench.explain import ExplainBench, RouteFigures, main, render
from loadtests.bench.http_bench import HttpResult, Point
from loadtests.bench.report import Report, Settings, targets
from loadtests.bench.stats import Spread
from loadtests.checks import WrongAnswerError, check_explanation

PROBABILITIES = dict(zip(CLASSES, (0.1, 0.0, 0.0, 0.2, 0.7), strict=True))
BASE = dict(zip(CLASSES, (0.2, 0.1, 0.1, 0.2, 0.4), strict=True))


def _answer(**changes: object) -> bytes:
    # Age carries the whole difference from the base; the other inputs none.
    values = {name: dict.fromkeys(CLASSES, 0.0) for name in FEATURE_NAMES}
    values["Age"] = {c: PROBABILITIES[c] - BASE[c] for c in CLASSES}
    answer = {
        "prediction": "DrugY",
        "probabilities": PROBABILITIES,
        "base_values": BASE,
        "values": values,
        "model_version": "v",
        "status": "success",
        **changes,
    }
    return msgspec.json.encode(answer)


def test_an_explanation_must_add_up_to_its_probabilities() -> None:
    assert check_explanation(_answer())["prediction"] == "DrugY"
    with pytest.raises(WrongAnswerError, match="base \\+ values"):
        check_explanation(_answer(base_values={**BASE, "DrugY": 0.5}))
    with pytest.raises(WrongAnswerError, match="incomplete"):
        check_explanation(_answer(values={}))
    with pytest.raises(WrongAnswerError, match="not JSON"):
        check_explanation(b"<html>")


def test_only_a_409_leaves_explain_out_of_the_http_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def answering(status: int, body: bytes) -> None:
        monkeypatch.setattr(http_bench, "post", lambda port, path, sent: (status, body))

    answering(409, b'{"error": "this version has no explanations"}')
    assert not http_bench.explains(1, [b"{}"])
    answering(200, _answer())
    assert http_bench.explains(1, [b"{}", b"{}"])
    answering(500, b'{"error": "internal"}')  # a broken /explain must fail the run
    with pytest.raises(WrongAnswerError):
        http_bench.explains(1, [b"{}"])


def test_the_report_holds_explain_to_predict_s_p50(served_artifacts: Path) -> None:
    def point(target: str, p50: float) -> Point:
        spread = Spread.of([p50])
        return Point(target, 16, spread, spread, spread, 10, 0)

    report = Report(
        settings=Settings(5.0, 3, 2, 1, True),
        model=read_metadata(Registry(served_artifacts).resolve_current()),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        load_before=(0.5, 0.5, 0.5),
        http=HttpResult(points=[point("predict", 1000), point("explain", 1600)], batch=None),
    )
    rows = {row[0]: row[1:] for row in targets(report)}
    name = "one patient's `/explain` p50 ≤ 1.5× `/predict`'s (16 connections)"
    assert rows[name] == ["1.60×", "**no**"]


def test_render_shows_medians_and_the_ratio_against_the_target() -> None:
    bench = ExplainBench(
        figures=[
            RouteFigures("/predict", 16, [1000.0, 2000.0, 3000.0], [900.0, 1000.0, 1100.0], 0),
            RouteFigures("/explain", 16, [1500.0, 2500.0, 9000.0], [800.0, 900.0, 1000.0], 1),
        ],
        ratios={16: [1.5, 1.25, 3.0]},
    )
    table = render(bench)
    assert "| 16 | `POST /predict` | 2,000 µs | 1,000 | 0 |  |" in table
    assert "**1.50** (rounds 1.50, 1.25, 3.00; target <= 1.5: met)" in table
    slower = ExplainBench(figures=bench.figures, ratios={16: [2.0]})
    assert "target <= 1.5: NOT met" in render(slower)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt)")
def test_a_quick_run_checks_the_answers_and_prints_both_routes(
    served_artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--artifacts-dir", str(served_artifacts), "--rounds", "1", "--duration", "1"]
    code = main([*args, "--connections", "1"])
    out = capsys.readouterr().out
    assert "`POST /predict`" in out and "`POST /explain`" in out
    assert code in (0, 1)  # 1: the target was missed on this (shared, noisy) machine


def test_what_cannot_be_measured_is_a_message_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--artifacts-dir", str(tmp_path / "none")]) == 2
    assert "error: no model published" in capsys.readouterr().err

    def refused(port: int, **settings: object) -> ExplainBench:
        raise WrongAnswerError("status 409, expected 200")

    monkeypatch.setattr(explain, "wrk_path", lambda: "wrk")
    monkeypatch.setattr(
        explain, "ServerProcess", lambda *args, **kwargs: nullcontext(SimpleNamespace(port=1))
    )
    monkeypatch.setattr(explain, "measure", refused)
    monkeypatch.setattr(Registry, "resolve_current", lambda self: tmp_path)
    assert main([]) == 2
    assert "/explain answered wrongly, nothing measured: status 409" in capsys.readouterr().err
