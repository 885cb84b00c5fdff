"""Offline explanations of a CSV with an exported version (what ``POST /explain`` answers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

from drugclf.artifact import (
    BASE_VALUES_OUTPUT,
    LABEL_OUTPUT,
    PROBABILITIES_OUTPUT,
    VALUES_OUTPUT,
    ArtifactError,
    read_explainer,
    read_metadata,
    read_model,
)
from drugclf.contract import FEATURE_NAMES
from training.dataset import load_dataset
from training.parity import onnx_feeds


def explain_csv(model_dir: Path, input_path: Path, output_path: Path) -> pd.DataFrame:
    """Predict and explain every row of ``input_path``; write one line per row.

    Columns: the inputs (and ``Drug`` when the file has it), ``prediction``, ``p_<class>``,
    ``base_<class>`` (the mean probability over the background rows) and
    ``value_<input>_<class>``: for every class, base + the five values = its probability.

    Raises:
        ArtifactError: the version has no explainer, or a file is not the one its metadata
            describes.
        DatasetError: the input cannot be read or is invalid.
    """
    meta = read_metadata(model_dir)
    explainer = read_explainer(model_dir, meta)
    if explainer is None:
        why = meta.explanations_skipped or "it was exported before explanations existed"
        raise ArtifactError(f"model {meta.version} has no explanations: {why}")
    dataset = load_dataset(input_path, require_labels=False)
    feeds = onnx_feeds(dataset.features)
    model = ort.InferenceSession(read_model(model_dir, meta), providers=["CPUExecutionProvider"])
    labels, probabilities = model.run([LABEL_OUTPUT, PROBABILITIES_OUTPUT], feeds)
    session = ort.InferenceSession(explainer, providers=["CPUExecutionProvider"])
    values, base = session.run([VALUES_OUTPUT, BASE_VALUES_OUTPUT], feeds)
    columns: dict[str, object] = {"prediction": labels.reshape(-1)}
    for c, label in enumerate(meta.classes):
        # Not rounded (unlike `predict`'s): base + values add up to these exactly.
        columns[f"p_{label}"] = np.minimum(probabilities[:, c], np.float32(1.0)).astype(float)
    for c, label in enumerate(meta.classes):
        columns[f"base_{label}"] = base[c]
    for i, name in enumerate(FEATURE_NAMES):
        for c, label in enumerate(meta.classes):
            columns[f"value_{name}_{label}"] = values[:, i, c]
    columns["model_version"] = meta.version
    result = dataset.features.copy()
    if dataset.labels is not None:
        result["Drug"] = dataset.labels.to_numpy()
    result = pd.concat([result, pd.DataFrame(columns, index=result.index)], axis=1)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(output_path, index=False)
    return result
