"""The served model: an ONNX session plus its metadata, checked before it answers anything.

``DrugModel.load`` refuses an artifact whose metadata does not match the ONNX session or the
feature contract; ``predict`` takes decoded patients and returns labels and probabilities. No
HTTP here, no scikit-learn, no pandas: the preprocessing is inside the ONNX graph.

A version exported with a cell table (``drugclf.cells``: the model's answer in each cell of the
grid it is constant on, proved bit for bit at export) answers by looking the patient's cell up,
and the table is checked against the session again at load. Without one, the session answers.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from drugclf.artifact import (
    CELL_TABLE_FILE,
    EXPLAINER_FILE,
    LABEL_OUTPUT,
    MODEL_FILE,
    PROBABILITIES_OUTPUT,
    ArtifactError,
    ArtifactMetadata,
    read_cell_table,
    read_explainer,
    read_metadata,
    read_model,
)
from drugclf.cells import CellTable, CellTableError
from drugclf.contract import CLASSES, FEATURE_NAMES, FIELDS, SAMPLE_PATIENT, Patient
from serving.inference.explainer import Explainer
from serving.settings import OrtThreads

logger = logging.getLogger(__name__)

# metadata element_type -> (ONNX session type string, numpy dtype of the column we feed).
_ELEMENT_TYPES: Final[dict[str, tuple[str, Any]]] = {
    "int64": ("tensor(int64)", np.int64),
    "double": ("tensor(double)", np.float64),
    "string": ("tensor(string)", object),
}
# Cells a load checks against the session (all of a small table; evenly spread in a large one).
_CHECKED_CELLS = 4096
# What the contract says each feature is, as an ONNX element type.
_CONTRACT_TYPES: Final = {"integer": "int64", "number": "double", "category": "string"}


def session_options(intra_op_threads: int = 1) -> ort.SessionOptions:
    """Options for many small requests served by one worker process per core.

    One intra-op thread and no spinning: each core already runs a worker, so a thread pool
    per session only adds contention (and spinning threads burn the core another worker
    needs). Measured in docs/serving.md.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: ORT's warnings are not ours to show
    return options


def _capped(probabilities: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Cap probabilities at 1, in place.

    The forest averages tree votes in float32, so a unanimous vote can sum to 1.0000001
    (20 trees × 0.05): within parity's tolerance, but not a probability a client should see.
    """
    np.minimum(probabilities, np.float32(1.0), out=probabilities)
    return probabilities


def columns(patients: Sequence[Patient]) -> dict[str, npt.NDArray[Any]]:
    """The graph inputs for a batch: one [N, 1] column per feature.

    Flat columns reshaped to [N, 1]: numpy fills them in one pass, where nested [[value]]
    lists would build a list per patient and convert each.
    """
    n = len(patients)
    return {
        "Age": np.fromiter([p.Age for p in patients], np.int64, n).reshape(n, 1),
        "Sex": np.array([p.Sex for p in patients], dtype=object).reshape(n, 1),
        "BP": np.array([p.BP for p in patients], dtype=object).reshape(n, 1),
        "Cholesterol": np.array([p.Cholesterol for p in patients], dtype=object).reshape(n, 1),
        "Na_to_K": np.fromiter([p.Na_to_K for p in patients], np.float64, n).reshape(n, 1),
    }


@dataclass(frozen=True, slots=True)
class Predictions:
    """Labels and per-class probabilities (columns in ``DrugModel.classes`` order)."""

    labels: list[str]
    probabilities: npt.NDArray[np.float32]


class DrugModel:
    """One loaded, checked model version. Immutable once loaded; share it freely."""

    def __init__(
        self,
        session: ort.InferenceSession,
        metadata: ArtifactMetadata,
        path: Path,
        *,
        threads: OrtThreads | None = None,
        explainer: Explainer | None = None,
        table: CellTable | None = None,
    ) -> None:
        self.session = session
        self.explainer = explainer
        """Exact Shapley values of this version (None: exported without them)."""
        self.table = table
        """The answers per cell this version looks up (None: the session answers)."""
        self.threads = threads or OrtThreads()
        # Looked up once: the process's pool for the slices beyond the first.
        self._pool = (
            _batch_pool(self.threads.large_batch - 1) if self.threads.large_batch > 1 else None
        )
        self.metadata = metadata
        self.path = path
        self.version = metadata.version
        self.classes: tuple[str, ...] = tuple(metadata.classes)
        self._outputs = [LABEL_OUTPUT, PROBABILITIES_OUTPUT]
        self._local = threading.local()

    @classmethod
    def load(cls, version_dir: Path, *, threads: OrtThreads | None = None) -> DrugModel:
        """Load and check one version folder (``artifacts/current`` resolved, or a version).

        Raises:
            ArtifactError: the folder, the metadata or the ONNX file is missing, unreadable,
                or does not match the feature contract.
        """
        threads = threads or OrtThreads()
        metadata = read_metadata(version_dir)
        _check_metadata(metadata, version_dir)
        model_path = version_dir / MODEL_FILE
        if metadata.model_sha256 is None:
            logger.warning(
                "%s predates format 2: its model file is not bound to its metadata (re-export it)",
                metadata.version,
                extra={"model_version": metadata.version},
            )
        session = _session(read_model(version_dir, metadata), model_path, threads.per_call)
        _check_session(session, metadata, model_path)
        explainer_bytes = read_explainer(version_dir, metadata)
        explainer = None
        if explainer_bytes is not None:
            explainer_path = version_dir / EXPLAINER_FILE
            explainer = Explainer(_session(explainer_bytes, explainer_path, 1), metadata)
            _check_session(explainer.session, metadata, explainer_path, model_outputs=False)
        table = None
        if threads.cell_table:
            table = _load_table(version_dir, metadata, session)
        model = cls(
            session, metadata, version_dir, threads=threads, explainer=explainer, table=table
        )
        # Fail at load, not on the first request.
        sample = model.predict([SAMPLE_PATIENT])
        if explainer is not None:
            explainer.check(columns([SAMPLE_PATIENT]), sample.probabilities, version_dir)
        return model

    def predict(self, patients: Sequence[Patient]) -> Predictions:
        """Predict a batch in one onnxruntime call, or by lookup (the order is kept)."""
        if self.table is not None:
            found, looked_up = self.table.predict(patients)
            return Predictions(labels=found, probabilities=looked_up)
        n = len(patients)
        feeds = columns(patients)
        parts = min(self.threads.large_batch, n)  # never an empty slice
        if parts > 1 and n >= self.threads.large_batch_rows:
            labels, probabilities = self._run_in_parts(feeds, n, parts)
        else:
            labels, probabilities = self.session.run(self._outputs, feeds)
        return Predictions(labels=labels.tolist(), probabilities=_capped(probabilities))

    def _run_in_parts(
        self, feeds: dict[str, npt.NDArray[Any]], n: int, parts: int
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.float32]]:
        """Run a large batch as ``parts`` slices at once on the same session, then join them.

        onnxruntime releases the GIL in ``run`` and a session takes concurrent calls, so the
        slices use idle cores. Not onnxruntime's own threads: for a batch they split the trees
        and add the partial sums in another order, so a patient's probabilities would differ
        in the last float32 bit from those it gets alone (and a tie could change its label).
        Each slice here runs the single-threaded kernel, so every answer is bit for bit the same.
        """
        edges = [n * i // parts for i in range(parts + 1)]
        slices = [
            {name: column[start:stop] for name, column in feeds.items()}
            for start, stop in itertools.pairwise(edges)
        ]
        pool = self._pool
        assert pool is not None  # parts > 1 only when threads.large_batch > 1
        pending = [pool.submit(self.session.run, self._outputs, part) for part in slices[1:]]
        results = [self.session.run(self._outputs, slices[0])]
        results += [future.result() for future in pending]
        labels = np.concatenate([labels for labels, _ in results])
        probabilities = np.concatenate([probabilities for _, probabilities in results])
        return labels, probabilities

    def predict_one(self, patient: Patient) -> Predictions:
        """``predict`` for a single patient, writing into reused [1, 1] input arrays.

        Building five numpy arrays costs more than filling five cells; the arrays belong to the
        calling thread (an event loop runs one ``session.run`` at a time), so reuse is safe.
        With a cell table, the probabilities are a read-only view of the table's row.
        """
        if self.table is not None:
            labels, row = self.table.predict_one(patient)
            return Predictions(labels=labels, probabilities=row)
        feeds: dict[str, Any] | None = getattr(self._local, "feeds", None)
        if feeds is None:
            feeds = self._local.feeds = {
                name: np.empty((1, 1), dtype=_ELEMENT_TYPES[spec.element_type][1])
                for name, spec in zip(FEATURE_NAMES, self.metadata.inputs, strict=True)
            }
        feeds["Age"][0, 0] = patient.Age
        feeds["Sex"][0, 0] = patient.Sex
        feeds["BP"][0, 0] = patient.BP
        feeds["Cholesterol"][0, 0] = patient.Cholesterol
        feeds["Na_to_K"][0, 0] = patient.Na_to_K
        labels, probabilities = self.session.run(self._outputs, feeds)
        return Predictions(labels=labels.tolist(), probabilities=_capped(probabilities))


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _batch_pool(workers: int) -> ThreadPoolExecutor:
    """The process's threads for batch slices (shared by every model version it loads)."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="ort-batch")
        return pool


def _load_table(
    version_dir: Path, metadata: ArtifactMetadata, session: ort.InferenceSession
) -> CellTable | None:
    """The version's cell table, checked against its session; None when it has none.

    The export gate proved the table bit for bit; this catches a table that belongs to another
    model or a runtime that computes other bits than the one that exported it.

    Raises:
        ArtifactError: the file is damaged, or its answers are not the session's.
    """
    data = read_cell_table(version_dir, metadata)
    if data is None:
        return None
    path = version_dir / CELL_TABLE_FILE
    try:
        table = CellTable.from_bytes(data)
    except CellTableError as exc:
        raise ArtifactError(f"{path}: {exc}") from exc
    cells = np.unique(
        np.linspace(0, table.cells - 1, min(table.cells, _CHECKED_CELLS)).astype(np.int64)
    )
    feeds = table.representative_columns(cells)
    labels, probabilities = session.run([LABEL_OUTPUT, PROBABILITIES_OUTPUT], feeds)
    _capped(probabilities)
    looked_up_labels, looked_up = table.predict_columns(feeds)
    differ = (looked_up_labels != labels.reshape(-1)) | np.any(
        looked_up.view(np.uint32) != probabilities.view(np.uint32), axis=1
    )
    if differ.any():
        raise ArtifactError(
            f"{path}: the table answers {int(differ.sum())} of {len(cells)} checked cells "
            "otherwise than the model; it belongs to another model"
        )
    return table


def _session(model: bytes, model_path: Path, threads: int) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(
            model,
            sess_options=session_options(threads),
            providers=["CPUExecutionProvider"],
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArtifactError(f"{model_path} is not a loadable ONNX model: {reason}") from exc


def _check_metadata(metadata: ArtifactMetadata, where: Path) -> None:
    if metadata.version != where.name:
        raise ArtifactError(
            f"{where}: metadata says version {metadata.version}, the folder is {where.name}"
        )
    if tuple(metadata.classes) != CLASSES:
        raise ArtifactError(
            f"{where}: metadata classes {metadata.classes} differ from the contract {list(CLASSES)}"
        )
    names = tuple(i.name for i in metadata.inputs)
    if names != FEATURE_NAMES:
        raise ArtifactError(
            f"{where}: metadata inputs {list(names)} differ from the contract {list(FEATURE_NAMES)}"
        )
    for spec, declared in zip(FIELDS, metadata.inputs, strict=True):
        if _CONTRACT_TYPES[spec.type] != declared.element_type:
            raise ArtifactError(
                f"{where}: input {declared.name} is {declared.element_type} in the metadata "
                f"but {_CONTRACT_TYPES[spec.type]} in the contract"
            )
    missing = {LABEL_OUTPUT, PROBABILITIES_OUTPUT} - set(metadata.outputs)
    if missing:
        raise ArtifactError(f"{where}: metadata outputs lack {sorted(missing)}")


def _check_session(
    session: ort.InferenceSession,
    metadata: ArtifactMetadata,
    model_path: Path,
    *,
    model_outputs: bool = True,
) -> None:
    """The graph's inputs are the metadata's; with ``model_outputs``, the model's outputs too."""
    graph_inputs = {i.name: i for i in session.get_inputs()}
    declared = {i.name: i.element_type for i in metadata.inputs}
    if set(graph_inputs) != set(declared):
        raise ArtifactError(
            f"{model_path}: graph inputs {sorted(graph_inputs)} differ from the metadata "
            f"inputs {sorted(declared)}"
        )
    for name, element_type in declared.items():
        onnx_type = _ELEMENT_TYPES[element_type][0]
        node = graph_inputs[name]
        if node.type != onnx_type:
            raise ArtifactError(
                f"{model_path}: graph input {name} is {node.type}, metadata says {onnx_type}"
            )
        if len(node.shape) != 2 or node.shape[1] not in (1, None, "?"):
            raise ArtifactError(
                f"{model_path}: graph input {name} has shape {node.shape}, not [N, 1]"
            )
    if not model_outputs:
        return
    outputs = {o.name: o for o in session.get_outputs()}
    if LABEL_OUTPUT not in outputs or PROBABILITIES_OUTPUT not in outputs:
        raise ArtifactError(
            f"{model_path}: graph outputs {sorted(outputs)} lack "
            f"'{LABEL_OUTPUT}' and '{PROBABILITIES_OUTPUT}' (was it exported with ZipMap?)"
        )
    if outputs[PROBABILITIES_OUTPUT].type != "tensor(float)":
        raise ArtifactError(
            f"{model_path}: output {PROBABILITIES_OUTPUT} is {outputs[PROBABILITIES_OUTPUT].type}, "
            "expected tensor(float)"
        )
