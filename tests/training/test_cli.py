"""The CLI end to end on the real data in a temporary folder, and its error handling."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from drugclf.registry import Registry
from tests.support import training_cli as _cli

pytestmark = pytest.mark.slow


def test_train_evaluate_export_predict_runs_list_promote_rollback(
    tmp_path: Path, data_path: Path
) -> None:
    out = _cli(tmp_path, "train", "--data", str(data_path), "--n-estimators", "30")
    assert out.returncode == 0, out.stderr
    assert "test accuracy" in out.stdout

    out = _cli(tmp_path, "evaluate")
    assert out.returncode == 0, out.stderr
    assert (
        "5-fold CV accuracy" in out.stdout
        and "confusion matrix" in out.stdout
        and "DrugC" in out.stdout
    )

    out = _cli(tmp_path, "export", "--parity-cases", "3000")
    assert out.returncode == 0, out.stderr
    assert "parity: 0 mismatches over" in out.stdout
    registry = Registry(tmp_path / "artifacts")
    first = registry.current_version()
    assert first is not None

    out = _cli(
        tmp_path,
        "full",
        "--data",
        str(data_path),
        "--n-estimators",
        "20",
        "--binning",
        "fixed",
        "--parity-cases",
        "3000",
    )
    assert out.returncode == 0, out.stderr
    second = registry.current_version()
    assert second is not None and second != first

    out = _cli(tmp_path, "runs")
    assert out.returncode == 0 and "learned" in out.stdout and "fixed" in out.stdout

    out = _cli(tmp_path, "list")
    assert out.returncode == 0 and first in out.stdout and second in out.stdout

    scored = tmp_path / "scored.csv"
    out = _cli(tmp_path, "predict", "--input", str(data_path), "--output", str(scored))
    assert out.returncode == 0, out.stderr
    frame = pd.read_csv(scored)
    assert len(frame) == 200
    assert (frame["model_version"] == second).all()
    assert (frame["prediction"] == frame["Drug"]).mean() > 0.75

    out = _cli(tmp_path, "rollback")
    assert out.returncode == 0 and registry.current_version() == first
    out = _cli(tmp_path, "promote", second)
    assert out.returncode == 0 and registry.current_version() == second


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "--data", "missing.csv"), "missing.csv: no such file"),
        (("export",), "no training runs"),
        (("promote", "../etc"), "is not a version name"),
        (("promote", "20991231-000000-abcdef"), "cannot read"),
        (("rollback",), "nothing to roll back to"),
        (("predict", "--input", "x.csv", "--output", "y.csv"), "no model published"),
    ],
)
def test_user_errors_exit_non_zero_without_traceback(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = _cli(tmp_path, *args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_bad_csv_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Age,Sex,BP,Cholesterol,Na_to_K,Drug\nold,F,HIGH,HIGH,25.3,DrugY\n")
    out = _cli(tmp_path, "explore", "--data", str(bad))
    assert out.returncode == 2
    assert "line 2, column Age: 'old' is not an integer" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("train", "--n-estimators", "0"),
        ("train", "--test-size", "0.6"),
        ("train", "--binning", "magic"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, args: tuple[str, ...]) -> None:
    out = _cli(tmp_path, *args)
    assert out.returncode == 2
    assert "error:" in out.stderr and "Traceback" not in out.stderr


def test_explore_prints_the_summary(tmp_path: Path, data_path: Path) -> None:
    out = _cli(tmp_path, "explore", "--data", str(data_path))
    assert out.returncode == 0, out.stderr
    for fragment in ("200 rows", "class distribution", "DrugY", "Na_to_K", "missing"):
        assert fragment in out.stdout


def _class_subset(data_path: Path, per_class: int, tmp_path: Path) -> Path:
    lines = data_path.read_text().splitlines()
    kept: dict[str, list[str]] = {}
    for line in lines[1:]:
        kept.setdefault(line.rsplit(",", 1)[1].lower(), []).append(line)
    out = tmp_path / f"{per_class}-per-class.csv"
    out.write_text(
        "\n".join([lines[0]] + [row for v in kept.values() for row in v[:per_class]]) + "\n"
    )
    return out


def test_too_few_rows_per_class_is_refused_by_train_and_optimize(
    tmp_path: Path, data_path: Path
) -> None:
    small = _class_subset(data_path, 4, tmp_path)
    for args in (
        ("train", "--data", str(small)),
        ("optimize", "--data", str(small), "--output", str(tmp_path / "o")),
    ):
        out = _cli(tmp_path, *args)
        assert out.returncode == 2, out.stderr
        assert "too few rows to train" in out.stderr and "DrugC has 4" in out.stderr
        assert "Traceback" not in out.stderr


def test_five_rows_per_class_train_and_export(tmp_path: Path, data_path: Path) -> None:
    five = _class_subset(data_path, 5, tmp_path)
    out = _cli(
        tmp_path, "full", "--data", str(five), "--n-estimators", "10", "--parity-cases", "200"
    )
    assert out.returncode == 0, out.stderr
    assert "parity: 0 mismatches" in out.stdout


def test_unwritable_output_and_bad_grid_are_clear_errors(tmp_path: Path, data_path: Path) -> None:
    assert (
        _cli(
            tmp_path,
            "full",
            "--data",
            str(data_path),
            "--n-estimators",
            "5",
            "--parity-cases",
            "100",
        ).returncode
        == 0
    )
    out = _cli(tmp_path, "predict", "--input", str(data_path), "--output", "/proc/nope/x.csv")
    assert (
        out.returncode == 2 and "error: /proc/nope" in out.stderr and "Traceback" not in out.stderr
    )
    out = _cli(tmp_path, "optimize", "--grid-n-estimators", "0")
    assert out.returncode == 2 and "0 is outside 1..1000" in out.stderr
