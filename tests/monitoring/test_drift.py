"""Drift scoring: PSI properties, binning at the edges, dataset rows vs shifted traffic."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drugclf.artifact import FeatureDistribution
from serving.monitoring.drift import (
    MIN_ROWS,
    PSI_THRESHOLD,
    bin_counts,
    bin_labels,
    feature_drift,
    psi,
)
from serving.monitoring.monitor import _drift

from .conftest import Trained

DATA = Path(__file__).resolve().parents[2] / "data" / "drug200.csv"


def dataset_rows() -> list[tuple[Any, ...]]:
    with DATA.open() as f:
        return [
            (int(r["Age"]), r["Sex"], r["BP"], r["Cholesterol"], float(r["Na_to_K"]))
            for r in csv.DictReader(f)
        ]


proportions = (
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=12)
    .filter(lambda xs: sum(xs) > 0)
    .map(lambda xs: [x / sum(xs) for x in xs])
)


@given(proportions)
def test_psi_of_a_distribution_with_itself_is_zero(p: list[float]) -> None:
    assert psi(p, p) == pytest.approx(0.0, abs=1e-12)


@given(st.data())
def test_psi_is_never_negative(data: st.DataObject) -> None:
    p = data.draw(proportions)
    q = data.draw(st.lists(st.floats(0.0, 1.0), min_size=len(p), max_size=len(p)))
    assert psi(p, q) >= -1e-12


def test_bins_are_right_closed_and_open_at_both_ends() -> None:
    counts = bin_counts(np.array([-5.0, 10.0, 10.0001, 20.0, 1e9]), [10.0, 20.0])
    assert counts.tolist() == [2, 2, 1]
    assert bin_labels([10.0, 20.0]) == ["<= 10", "(10, 20]", "> 20"]


def test_categories_outside_the_reference_are_ignored() -> None:
    ref = FeatureDistribution("Sex", "categorical", [0.5, 0.5], categories=["F", "M"])
    result = feature_drift(ref, ["F", "M", "X"] * 30)
    assert result.live_counts == [30, 30]
    assert not result.drift


def test_dataset_rows_do_not_raise_the_flag(trained: Trained) -> None:
    report = _drift(trained.metadata, dataset_rows())
    assert report.rows == 200
    assert not report.drifted, [(f.name, f.psi) for f in report.features]
    assert all(f.psi is not None and f.psi < PSI_THRESHOLD for f in report.features)


def test_a_resample_of_the_dataset_does_not_raise_the_flag(trained: Trained) -> None:
    rows = dataset_rows()
    rng = random.Random(7)
    report = _drift(trained.metadata, [rng.choice(rows) for _ in range(1000)])
    assert not report.drifted


def test_high_na_to_k_traffic_raises_the_flag(trained: Trained) -> None:
    shifted = [r for r in dataset_rows() if r[4] > 30]
    rows = (shifted * 10)[:200]
    report = _drift(trained.metadata, rows)
    by_name = {f.name: f for f in report.features}
    assert by_name["Na_to_K"].drift and by_name["Na_to_K"].psi is not None
    assert by_name["Na_to_K"].psi > PSI_THRESHOLD
    assert report.drifted


def test_too_few_rows_report_psi_without_a_flag(trained: Trained) -> None:
    shifted = [r for r in dataset_rows() if r[4] > 30][: MIN_ROWS - 1]
    report = _drift(trained.metadata, shifted)
    assert not report.drifted
    assert {f.name: f for f in report.features}["Na_to_K"].psi is not None


def test_no_rows_means_no_psi(trained: Trained) -> None:
    report = _drift(trained.metadata, [])
    assert report.rows == 0 and not report.drifted
    assert all(f.psi is None for f in report.features)
