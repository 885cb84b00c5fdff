"""Offline batch scoring of a file with an exported ONNX model (what serving would answer).

``score_file`` is the single-process engine; ``training.batch`` runs the same steps partition
by partition on a Dask cluster and writes the same file.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pandas as pd

from drugclf.artifact import (
    LABEL_OUTPUT,
    PROBABILITIES_OUTPUT,
    ArtifactMetadata,
    read_metadata,
    read_model,
)
from training.batch.files import file_format, read_whole, write_frame
from training.parity import onnx_feeds


def new_session(model: bytes) -> ort.InferenceSession:
    """An onnxruntime session on the CPU, one thread, as serving runs the model.

    One thread also makes the answers the same bit for bit whatever the engine: with several,
    onnxruntime adds the trees' float32 votes in another order (last digits differ).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def scored_frame(
    session: ort.InferenceSession,
    meta: ArtifactMetadata,
    features: pd.DataFrame,
    labels: pd.Series | None,
) -> pd.DataFrame:
    """The inputs, the label if any, the prediction, each class's probability, the version."""
    predicted, probabilities = session.run(
        [LABEL_OUTPUT, PROBABILITIES_OUTPUT], onnx_feeds(features)
    )
    result = features.copy()
    if labels is not None:
        result["Drug"] = labels.to_numpy()
    result["prediction"] = predicted.reshape(-1)
    for i, name in enumerate(meta.classes):
        result[f"p_{name}"] = probabilities[:, i].round(6)
    result["model_version"] = meta.version
    return result


def score_file(model_dir: Path, input_path: Path, output_path: Path) -> pd.DataFrame:
    """Predict every row of ``input_path`` (CSV or Parquet) and write the scored rows.

    The input needs the five feature columns; a ``Drug`` column, if present, is validated and
    kept so predictions can be compared with it. Nothing is written for an invalid file.

    Raises:
        DatasetError: the input cannot be read, is invalid, or a format is not supported.
    """
    out_format = file_format(output_path)
    meta = read_metadata(model_dir)
    dataset = read_whole(input_path)
    session = new_session(read_model(model_dir, meta))  # the file its metadata describes
    result = scored_frame(session, meta, dataset.features, dataset.labels)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    write_frame(result, output_path, out_format)
    return result


# The name the CLI and the tests used before Parquet.
score_csv = score_file
