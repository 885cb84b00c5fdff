"""Pipeline: determinism, SMOTE only on the fit path, learned edges from training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from drugclf.artifact import Params
from training.features import Binner
from training.pipeline import build_pipeline, inference_pipeline, smote_neighbours


def test_same_data_and_params_give_the_same_model(
    dataset_frames: tuple[pd.DataFrame, pd.Series],
) -> None:
    features, labels = dataset_frames
    first = build_pipeline(Params(n_estimators=30)).fit(features, labels)
    second = build_pipeline(Params(n_estimators=30)).fit(features, labels)
    np.testing.assert_array_equal(first.predict_proba(features), second.predict_proba(features))


def test_inference_pipeline_drops_smote_only(
    dataset_frames: tuple[pd.DataFrame, pd.Series],
) -> None:
    features, labels = dataset_frames
    fitted = build_pipeline(Params(n_estimators=10)).fit(features, labels)
    assert [name for name, _ in fitted.steps] == ["features", "smote", "forest"]
    assert [name for name, _ in inference_pipeline(fitted).steps] == ["features", "forest"]
    assert [name for name, _ in build_pipeline(Params(smote=False)).steps] == ["features", "forest"]


def test_learned_edges_come_from_the_rows_it_is_fitted_on(
    dataset_frames: tuple[pd.DataFrame, pd.Series],
) -> None:
    features, labels = dataset_frames
    half = features.index[:100]
    fitted = build_pipeline(Params(n_estimators=10)).fit(features.loc[half], labels.loc[half])
    binner = fitted.named_steps["features"].named_transformers_["Na_to_K"]
    assert isinstance(binner, Binner)
    alone = Binner(strategy="learned", random_state=42).fit(
        features.loc[half, ["Na_to_K"]], labels.loc[half]
    )
    np.testing.assert_array_equal(binner.edges_, alone.edges_)


def test_smote_neighbours_fit_small_classes() -> None:
    assert smote_neighbours(["a"] * 50 + ["b"] * 20) == 5
    assert smote_neighbours(["a"] * 50 + ["b"] * 3) == 2
    assert smote_neighbours(["a"] * 50 + ["b"] * 10, folds=5) == 5
    assert smote_neighbours(["a"] * 50 + ["b"] * 2) == 1
