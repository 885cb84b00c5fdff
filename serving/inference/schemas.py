"""Response bodies of the API, as msgspec Structs (encoded with prebuilt encoders).

The shapes keep the original project's contract, so its clients keep working.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from drugclf.artifact import Metrics, ParitySummary
from drugclf.contract import CLASSES, FieldSpec


# gc=False on the per-patient answer structs: a batch builds them by the thousand, and their
# fields (floats, strings, an untracked struct) cannot form a cycle.
class Probabilities(msgspec.Struct, frozen=True, gc=False):
    """One probability per drug class; the fields are the contract's CLASSES, in order."""

    DrugA: float
    DrugB: float
    DrugC: float
    DrugX: float
    DrugY: float


# Spelled out so OpenAPI and mypy see the fields; tied to the contract so it cannot drift.
if Probabilities.__struct_fields__ != CLASSES:  # pragma: no cover - a contract change
    raise ImportError(
        f"serving.inference.schemas.Probabilities fields {Probabilities.__struct_fields__} "
        f"differ from the contract's classes {CLASSES}"
    )


class PredictionResponse(msgspec.Struct, frozen=True, gc=False):
    """The answer for one patient."""

    prediction: str
    probabilities: Probabilities
    model_version: str
    status: Literal["success"] = "success"


class HealthResponse(msgspec.Struct, frozen=True):
    """Liveness: the process answers; says whether and which model is loaded."""

    status: Literal["healthy"]
    model_loaded: bool
    model_version: str | None
    current_version: str | None = None
    """The version the registry's ``current`` names; differs from ``model_version`` while this
    worker refuses to load it (``reload_refused``)."""
    reload_refused: bool = False


class ReadyResponse(msgspec.Struct, frozen=True):
    """Readiness: 200 only when a model is loaded."""

    status: Literal["ready", "not_ready"]
    model_version: str | None


class ModelInfoResponse(msgspec.Struct, frozen=True):
    """What the loaded model is, what it accepts and how good it is."""

    model_type: str
    model_version: str
    n_estimators: int
    max_leaf_nodes: int
    binning: str
    smote: bool
    classes: list[str]
    features: list[FieldSpec]
    metrics: Metrics
    created_at: str
    data_sha256: str
    data_rows: int
    git_commit: str | None
    parity: ParitySummary
    parity_passed: bool
    library_versions: dict[str, str]
    opset: dict[str, int]
    model_sha256: str | None
    current_version: str | None
    """The version the registry's ``current`` names (see ``HealthResponse``)."""
    reload_refused: bool
