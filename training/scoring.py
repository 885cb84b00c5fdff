"""Offline batch scoring of a CSV with an exported ONNX model (what serving would answer)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pandas as pd

from drugclf.artifact import LABEL_OUTPUT, PROBABILITIES_OUTPUT, read_metadata, read_model
from training.dataset import load_dataset
from training.parity import onnx_feeds


def score_csv(model_dir: Path, input_path: Path, output_path: Path) -> pd.DataFrame:
    """Predict every row of ``input_path`` and write inputs, prediction and probabilities.

    The input needs the five feature columns; a ``Drug`` column, if present, is validated and
    kept so predictions can be compared with it.
    """
    meta = read_metadata(model_dir)
    dataset = load_dataset(input_path, require_labels=False)
    model = read_model(model_dir, meta)  # the file its metadata describes, or an error
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(
        [LABEL_OUTPUT, PROBABILITIES_OUTPUT], onnx_feeds(dataset.features)
    )
    result = dataset.features.copy()
    if dataset.labels is not None:
        result["Drug"] = dataset.labels
    result["prediction"] = labels.reshape(-1)
    for i, name in enumerate(meta.classes):
        result[f"p_{name}"] = probabilities[:, i].round(6)
    result["model_version"] = meta.version
    output_path.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(output_path, index=False)
    return result
