"""The self-describing metadata that travels with every exported model (``metadata.json``).

Training writes it at export; serving reads it at load and checks it against the ONNX session
and the feature contract before it serves a single request.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from drugclf.contract import FieldSpec

# Bump when a field changes meaning; serving refuses formats it does not know. Format 2 binds
# the model file to its metadata (model_sha256); format 1 artifacts still load, unverified.
FORMAT_VERSION: Final = 2
READABLE_FORMATS: Final = (1, 2)
MODEL_FILE: Final = "model.onnx"
METADATA_FILE: Final = "metadata.json"
CONFUSION_MATRIX_FILE: Final = "confusion_matrix.png"
EXPLAINER_FILE: Final = "explainer.onnx"
BACKGROUND_FILE: Final = "background.csv"
CELL_TABLE_FILE: Final = "cells.npz"
# The ONNX outputs, as plain tensors (no ZipMap): the label and one probability per class.
LABEL_OUTPUT: Final = "label"
PROBABILITIES_OUTPUT: Final = "probabilities"
# The explainer's outputs: Shapley values [N, inputs, classes], base values [classes], and
# each patient's cell of the model's input grid [N, 1].
VALUES_OUTPUT: Final = "values"
BASE_VALUES_OUTPUT: Final = "base_values"
CELL_OUTPUT: Final = "cell"

BinningStrategy = Literal["fixed", "learned", "none"]

# The accepted training parameters, shared by the CLI's options and the retrain endpoint.
N_ESTIMATORS_RANGE: Final = (1, 1000)
MAX_LEAF_NODES_RANGE: Final = (2, 1000)
# Exclusive bounds: a test split under 5 % of 200 rows holds too few patients of the rare
# classes to score, and one over half leaves too few to train on.
TEST_SIZE_BOUNDS: Final = (0.05, 0.5)
SEED_RANGE: Final = (0, 2**32 - 1)
PARITY_CASES_RANGE: Final = (0, 10_000_000)
"""Random patients in the parity gate (the dataset rows and the bin edges are always checked)."""
DEFAULT_PARITY_CASES: Final = 100_000
NEstimators = Annotated[int, Meta(ge=N_ESTIMATORS_RANGE[0], le=N_ESTIMATORS_RANGE[1])]
MaxLeafNodes = Annotated[int, Meta(ge=MAX_LEAF_NODES_RANGE[0], le=MAX_LEAF_NODES_RANGE[1])]
TestSize = Annotated[float, Meta(gt=TEST_SIZE_BOUNDS[0], lt=TEST_SIZE_BOUNDS[1])]
Seed = Annotated[int, Meta(ge=SEED_RANGE[0], le=SEED_RANGE[1])]
ParityCases = Annotated[int, Meta(ge=PARITY_CASES_RANGE[0], le=PARITY_CASES_RANGE[1])]


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a model was trained with: enough to train it again."""

    n_estimators: NEstimators = 100
    max_leaf_nodes: MaxLeafNodes = 30
    binning: BinningStrategy = "learned"
    smote: bool = True
    test_size: TestSize = 0.3
    random_state: Seed = 42


class ClassReport(msgspec.Struct, frozen=True):
    """Per-class precision, recall and F1 on the test split."""

    precision: float
    recall: float
    f1: float
    support: int


class Metrics(msgspec.Struct, frozen=True):
    """Quality of a model, on its held-out test split and under cross-validation."""

    test_accuracy: float
    cv_accuracy_mean: float
    cv_accuracy_std: float
    cv_folds: int
    per_class: dict[str, ClassReport]
    macro_f1: float
    weighted_f1: float
    confusion_matrix: list[list[int]]
    train_rows: int
    test_rows: int


class ParitySummary(msgspec.Struct, frozen=True):
    """How ONNX and scikit-learn compared before the model was published."""

    cases: int
    label_mismatches: int
    prob_mismatches: int
    max_abs_prob_diff: float
    tolerance: float
    groups: dict[str, int]

    @property
    def mismatches(self) -> int:
        """Cases where the label differs or a probability is off by more than the tolerance."""
        return max(self.label_mismatches, self.prob_mismatches)

    @property
    def passed(self) -> bool:
        """True when every case agreed."""
        return self.label_mismatches == 0 and self.prob_mismatches == 0


class ExplanationGate(msgspec.Struct, frozen=True):
    """How the explainer compared with the model before the version was published.

    Efficiency: base value + sum of the values = the served probability, per class. Served
    against Python: the values onnxruntime gathers equal the ones computed at export.
    """

    cases: int
    groups: dict[str, int]
    efficiency_failures: int
    max_efficiency_error: float
    python_mismatches: int
    max_python_diff: float
    tolerance: float

    @property
    def passed(self) -> bool:
        """True when every case held."""
        return self.efficiency_failures == 0 and self.python_mismatches == 0


class Explanations(msgspec.Struct, frozen=True):
    """The exact Shapley explainer shipped beside the model (``explainer.onnx``).

    Players: the five raw inputs. Background: the training rows before SMOTE
    (``background.csv``), so a base value is the mean served probability over them.
    """

    explainer_sha256: str
    background_rows: int
    background_sha256: str
    cells: int
    """Cells of the grid the model is constant on (each has its values precomputed)."""
    cells_per_input: dict[str, int]
    base_values: dict[str, float]
    importance: dict[str, dict[str, float]]
    """Mean absolute value over the background rows, per input then per class."""
    gate: ExplanationGate


class CellTableGate(msgspec.Struct, frozen=True):
    """How the cell table compared with ``model.onnx`` before the version was published.

    ``cases`` were run as one batch; ``single_cases`` (every cell, every edge case) also one
    patient per call. A mismatch is a different label or any probability's bits.
    """

    cases: int
    groups: dict[str, int]
    mismatches: int
    single_cases: int
    single_mismatches: int

    @property
    def passed(self) -> bool:
        """True when every case matched."""
        return self.mismatches == 0 and self.single_mismatches == 0


class CellTableInfo(msgspec.Struct, frozen=True):
    """The model's answers per cell (``cells.npz``), which serving looks up (drugclf.cells)."""

    sha256: str
    cells: int
    cells_per_input: dict[str, int]
    gate: CellTableGate


class InputSpec(msgspec.Struct, frozen=True):
    """One ONNX graph input: a raw feature as a column tensor of shape [N, 1]."""

    name: str
    element_type: Literal["int64", "double", "string"]


class FeatureDistribution(msgspec.Struct, frozen=True):
    """One feature's distribution in the training data, which monitoring compares traffic to.

    Numeric features: ``edges`` are the interior histogram edges (bins are open at both ends,
    right-closed) and ``proportions`` has one entry per bin. Categorical features: ``categories``
    and ``proportions`` align.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    proportions: list[float]
    edges: list[float] | None = None
    categories: list[str] | None = None


class ArtifactMetadata(msgspec.Struct, frozen=True):
    """Everything serving and people need to know about one exported model version."""

    format_version: int
    version: str
    created_at: str
    model_type: str
    git_commit: str | None
    data_sha256: str
    data_rows: int
    params: Params
    metrics: Metrics
    classes: list[str]
    features: list[FieldSpec]
    inputs: list[InputSpec]
    outputs: list[str]
    bin_edges: dict[str, list[float]]
    opset: dict[str, int]
    library_versions: dict[str, str]
    parity: ParitySummary
    training_distribution: list[FeatureDistribution]
    model_sha256: str | None = None
    """sha256 of ``model.onnx`` (hex); required from format 2 on."""
    explanations: Explanations | None = None
    """The explainer, bound by its sha256; None for exports without one (older, or too many
    cells to precompute: ``explanations_skipped`` says why)."""
    explanations_skipped: str | None = None
    cell_table: CellTableInfo | None = None
    """The model's answer per cell, bound by its sha256; None for exports without one (older,
    or more cells than the explainer's cap): serving then runs ``model.onnx``."""


class ArtifactError(Exception):
    """An artifact is missing, unreadable or does not match what this code expects."""


def read_metadata(version_dir: Path) -> ArtifactMetadata:
    """Read and validate ``metadata.json`` of one version directory.

    Raises:
        ArtifactError: the file is missing, not JSON, or not in the expected schema.
    """
    path = version_dir / METADATA_FILE
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        meta = msgspec.json.decode(raw, type=ArtifactMetadata)
    except msgspec.DecodeError as exc:
        raise ArtifactError(f"{path} is not valid metadata: {exc}") from exc
    if meta.format_version not in READABLE_FORMATS:
        readable = ", ".join(map(str, READABLE_FORMATS))
        raise ArtifactError(
            f"{path} has format_version {meta.format_version}; this code reads {readable}"
        )
    if meta.format_version >= 2 and meta.model_sha256 is None:
        raise ArtifactError(f"{path} has no model_sha256 (required from format_version 2)")
    return meta


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data``, as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def read_model(version_dir: Path, meta: ArtifactMetadata) -> bytes:
    """The bytes of ``model.onnx``, checked against the metadata's ``model_sha256``.

    Serving builds its session from these very bytes, so what was checked is what runs.

    Raises:
        ArtifactError: the file is missing, a link, or not the file the metadata describes.
    """
    return _bound_file(version_dir / MODEL_FILE, meta.model_sha256, "model")


def read_explainer(version_dir: Path, meta: ArtifactMetadata) -> bytes | None:
    """The bytes of ``explainer.onnx``, checked like the model; None when it has none.

    The background rows it was computed over are checked too (sha256 and row count), so a
    published version's explanations can always be verified again.

    Raises:
        ArtifactError: a file is missing, a link, or not the one the metadata describes.
    """
    explanations = meta.explanations
    if explanations is None:
        return None
    data = _bound_file(version_dir / EXPLAINER_FILE, explanations.explainer_sha256, "explainer")
    background = _bound_file(
        version_dir / BACKGROUND_FILE, explanations.background_sha256, "background rows"
    )
    rows = background.count(b"\n") - 1  # a header line, then one line per row
    if rows != explanations.background_rows:
        raise ArtifactError(
            f"{version_dir / BACKGROUND_FILE} has {rows} rows, its metadata says "
            f"{explanations.background_rows}"
        )
    return data


def read_cell_table(version_dir: Path, meta: ArtifactMetadata) -> bytes | None:
    """The bytes of ``cells.npz``, checked like the model; None when the version has none.

    Raises:
        ArtifactError: the file is missing, a link, or not the one the metadata describes.
    """
    if meta.cell_table is None:
        return None
    return _bound_file(version_dir / CELL_TABLE_FILE, meta.cell_table.sha256, "cell table")


def _bound_file(path: Path, sha256: str | None, what: str) -> bytes:
    """The bytes of one of a version's files, checked against its sha256 (when recorded)."""
    if path.is_symlink():
        raise ArtifactError(f"{path} is a symbolic link; a version holds its own {what} file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if sha256 is not None:
        actual = sha256_hex(data)
        if actual != sha256:
            raise ArtifactError(
                f"{path} is not the {what} its metadata describes (sha256 {actual[:12]}..., "
                f"metadata says {sha256[:12]}...): the file was replaced or damaged"
            )
    return data


def write_metadata(version_dir: Path, meta: ArtifactMetadata) -> None:
    """Write ``metadata.json`` (pretty, so people can read it)."""
    encoded = msgspec.json.format(msgspec.json.encode(meta), indent=2)
    (version_dir / METADATA_FILE).write_bytes(encoded + b"\n")
