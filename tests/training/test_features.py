"""Features: bin assignment at and beside every edge, open ends, learned edges, one-hot columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drugclf.contract import FIXED_BIN_EDGES
from training.features import Binner, bin_one_hot, build_preprocessor


def _bin(values: list[float], edges: tuple[float, ...]) -> list[int]:
    one_hot = bin_one_hot(np.asarray(values, dtype=np.float64), np.asarray(edges, dtype=np.float64))
    assert (one_hot.sum(axis=1) == 1).all(), "every value falls in exactly one bin"
    return [int(i) for i in one_hot.argmax(axis=1)]


@pytest.mark.parametrize("feature", ["Age", "Na_to_K"])
def test_right_closed_at_and_beside_every_edge(feature: str) -> None:
    edges = FIXED_BIN_EDGES[feature]
    for position, edge in enumerate(edges):
        below, at, above = np.nextafter(edge, -np.inf), float(edge), np.nextafter(edge, np.inf)
        assert _bin([below, at, above], edges) == [position, position, position + 1], edge


def test_pd_cut_semantics_inside_the_original_range() -> None:
    ages = list(range(1, 81))
    edges = FIXED_BIN_EDGES["Age"]
    expected = pd.cut(ages, [0, *edges, 80], labels=False, right=True)
    assert _bin([float(a) for a in ages], edges) == list(expected)


def test_bins_are_open_at_both_ends() -> None:
    age_edges = FIXED_BIN_EDGES["Age"]
    na_edges = FIXED_BIN_EDGES["Na_to_K"]
    assert _bin([0, 85, 120], age_edges) == [0, len(age_edges), len(age_edges)]
    assert _bin([0.01, 50.0, 60.0, 150.0], na_edges) == [0, 3, 3, 3]


def test_original_labels_19_is_in_the_first_bin() -> None:
    assert _bin([19.0], FIXED_BIN_EDGES["Age"]) == [0]
    assert _bin([20.0], FIXED_BIN_EDGES["Age"]) == [1]


def test_none_strategy_passes_raw_values() -> None:
    binner = Binner(strategy="none").fit(np.array([[1.5], [2.5]]))
    assert binner.transform(np.array([[7.25]])).tolist() == [[7.25]]


def test_learned_edges_find_the_decisive_na_to_k_threshold(
    dataset_frames: tuple[pd.DataFrame, pd.Series],
) -> None:
    features, labels = dataset_frames
    binner = Binner(strategy="learned").fit(features[["Na_to_K"]], (labels == "DrugY").to_numpy())
    assert binner.edges_ is not None
    # Every DrugY patient has Na_to_K above ~14.8 and no other does: the edge must sit there.
    assert np.any((binner.edges_ > 14.5) & (binner.edges_ < 15.1))


def test_learned_binning_needs_labels() -> None:
    with pytest.raises(ValueError, match="needs the labels"):
        Binner(strategy="learned").fit(np.array([[1.0], [2.0]]))


def test_preprocessor_output_columns(dataset_frames: tuple[pd.DataFrame, pd.Series]) -> None:
    features, labels = dataset_frames
    pre = build_preprocessor("fixed").fit(features, labels)
    names = list(pre.get_feature_names_out())
    assert len(names) == (6 + 1) + (3 + 1) + 2 + 3 + 2
    out = pre.transform(features)
    assert out.shape == (200, len(names))
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert (out.sum(axis=1) == 5).all(), "one bin or category per input"


def test_one_hot_categories_come_from_the_contract_not_the_data(
    dataset_frames: tuple[pd.DataFrame, pd.Series],
) -> None:
    features, labels = dataset_frames
    only_low = features[features["BP"] == "LOW"]
    pre = build_preprocessor("fixed").fit(only_low, labels[only_low.index])
    high = features[features["BP"] == "HIGH"].head(3)
    assert pre.transform(high).shape[0] == 3
