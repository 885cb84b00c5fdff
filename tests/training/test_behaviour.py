"""Model behaviour: direction and invariance tests on the exported model."""

from __future__ import annotations

import onnxruntime as ort
import pandas as pd

from drugclf.artifact import MODEL_FILE
from training.parity import onnx_feeds

from .conftest import Exported


def _predict(
    exported: Exported, rows: pd.DataFrame | list[dict[str, object]]
) -> tuple[list[str], pd.DataFrame]:
    session = ort.InferenceSession(
        str(exported.result.path / MODEL_FILE), providers=["CPUExecutionProvider"]
    )
    frame = pd.DataFrame(rows)[["Age", "Sex", "BP", "Cholesterol", "Na_to_K"]]
    labels, probs = session.run(None, onnx_feeds(frame))
    return list(labels), pd.DataFrame(probs, columns=exported.result.metadata.classes)


def test_high_na_to_k_moves_towards_drug_y(exported: Exported) -> None:
    base = {"Age": 50, "Sex": "M", "BP": "LOW", "Cholesterol": "HIGH"}
    rows = [{**base, "Na_to_K": value} for value in (8.0, 12.0, 20.0, 30.0, 60.0, 150.0)]
    labels, probs = _predict(exported, rows)
    assert labels[0] != "DrugY"
    assert labels[2:] == ["DrugY"] * 4, "open-ended top bin: very high ratios stay DrugY"
    assert probs["DrugY"].iloc[-1] > probs["DrugY"].iloc[0]


def test_sex_alone_does_not_flip_confident_predictions(exported: Exported) -> None:
    features = exported.run.dataset.features
    labels_f, probs_f = _predict(exported, features.assign(Sex="F"))
    labels_m, probs_m = _predict(exported, features.assign(Sex="M"))
    confident = (probs_f.max(axis=1) > 0.8) & (probs_m.max(axis=1) > 0.8)
    assert confident.sum() > 100
    flipped = [a != b for a, b, c in zip(labels_f, labels_m, confident, strict=True) if c]
    assert not any(flipped)


def test_old_and_young_patients_outside_original_bins_get_an_answer(exported: Exported) -> None:
    rows = [
        {"Age": 0, "Sex": "F", "BP": "HIGH", "Cholesterol": "HIGH", "Na_to_K": 10.0},
        {"Age": 120, "Sex": "M", "BP": "HIGH", "Cholesterol": "NORMAL", "Na_to_K": 10.0},
    ]
    labels, probs = _predict(exported, rows)
    assert all(label.startswith("Drug") for label in labels)
    assert ((probs.sum(axis=1) - 1).abs() < 1e-5).all()
