"""Served predictions equal the training pipeline's (scikit-learn) on every dataset row.

The test uses the training side (scikit-learn, pandas); the server under test does not.
"""

from __future__ import annotations

import numpy as np
from litestar import Litestar
from litestar.testing import TestClient

from drugclf.contract import CLASSES
from training.dataset import load_dataset
from training.pipeline import inference_pipeline
from training.runs import RunStore

from .conftest import DATA, Trained


def test_served_predictions_equal_the_training_pipeline(
    client: TestClient[Litestar], trained: Trained
) -> None:
    store = RunStore(trained.runs_dir)
    record = store.load()
    assert record.exported_version == trained.version
    pipeline = inference_pipeline(store.load_pipeline(record.run_id))
    dataset = load_dataset(DATA)
    features = dataset.features

    expected_labels = pipeline.predict(features)
    expected_probs = pipeline.predict_proba(features)
    assert list(pipeline.classes_) == list(CLASSES)

    rows = features.to_dict(orient="records")
    body = [
        {
            "Age": int(r["Age"]),
            "Sex": str(r["Sex"]),
            "BP": str(r["BP"]),
            "Cholesterol": str(r["Cholesterol"]),
            "Na_to_K": float(r["Na_to_K"]),
        }
        for r in rows
    ]
    response = client.post("/predict", json=body)
    assert response.status_code == 200
    served = response.json()
    assert len(served) == len(rows) == 200
    assert [s["prediction"] for s in served] == list(expected_labels)
    served_probs = np.array([[s["probabilities"][c] for c in CLASSES] for s in served])
    np.testing.assert_allclose(served_probs, expected_probs, atol=1e-5)

    # And one by one, through the single-patient path.
    for row, label in zip(body[:40], expected_labels[:40], strict=True):
        assert client.post("/predict", json=row).json()["prediction"] == label
