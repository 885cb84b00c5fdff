"""The bodies of the explanation routes, as msgspec Structs.

Named as shap names them: ``base_values`` (one per class) and ``values`` (one per input and
class), so that for every class ``base_values[c] + sum of values[i][c] = probabilities[c]``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from drugclf.artifact import ExplanationGate
from drugclf.contract import CLASSES, FEATURE_NAMES
from serving.inference.schemas import Probabilities


class ClassValues(msgspec.Struct, frozen=True, gc=False):
    """One number per drug class (the contract's CLASSES, in order)."""

    DrugA: float
    DrugB: float
    DrugC: float
    DrugX: float
    DrugY: float


class InputValues(msgspec.Struct, frozen=True, gc=False):
    """Each input's contribution to each class's probability (the contract's inputs)."""

    Age: ClassValues
    Sex: ClassValues
    BP: ClassValues
    Cholesterol: ClassValues
    Na_to_K: ClassValues


# Spelled out so OpenAPI and mypy see the fields; tied to the contract so they cannot drift.
if ClassValues.__struct_fields__ != CLASSES or InputValues.__struct_fields__ != FEATURE_NAMES:
    raise ImportError(  # pragma: no cover - a contract change
        "serving.explain.schemas: ClassValues or InputValues differ from the contract"
    )


class ExplanationResponse(msgspec.Struct, frozen=True, gc=False):
    """One patient's prediction and why: its exact Shapley values per input and class."""

    prediction: str
    probabilities: Probabilities
    base_values: ClassValues
    """The mean probability of each class over the background (the training rows)."""
    values: InputValues
    """How much each input moved each class's probability away from its base value."""
    model_version: str
    status: Literal["success"] = "success"


class ExplanationsInfo(msgspec.Struct, frozen=True):
    """How the served model's explanations were made, and what they say overall."""

    model_version: str
    method: str
    players: list[str]
    background_rows: int
    background_sha256: str
    explainer_sha256: str
    cells: int
    cells_per_input: dict[str, int]
    base_values: dict[str, float]
    importance: dict[str, dict[str, float]]
    """Mean absolute value over the background rows, per input then per class."""
    gate: ExplanationGate
    gate_passed: bool
