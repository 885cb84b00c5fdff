"""The feature contract: the one definition of a patient, the drug classes and the bin edges.

Training (CSV rows), serving (JSON requests), the web UI (via ``GET /model/info``) and the load
tests all read this module, so it imports nothing heavier than msgspec.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, get_args

import msgspec
from msgspec import Meta

AGE_MIN: Final = 0
AGE_MAX: Final = 120
# Na_to_K is a sodium/potassium ratio: it cannot be zero or negative. Serum values sit near 30-40
# and the dataset tops out at 38.2; 150 still covers extreme hypokalaemia (Na 180 / K 1.2).
NA_TO_K_MAX: Final = 150.0

SexValue = Literal["F", "M"]
BPValue = Literal["HIGH", "LOW", "NORMAL"]
CholesterolValue = Literal["HIGH", "NORMAL"]
DrugClass = Literal["DrugA", "DrugB", "DrugC", "DrugX", "DrugY"]

Age = Annotated[int, Meta(ge=AGE_MIN, le=AGE_MAX, description="Age in whole years.", examples=[45])]
NaToK = Annotated[
    float,
    Meta(
        gt=0.0,
        le=NA_TO_K_MAX,
        description="Sodium to potassium ratio in blood: a finite number > 0 and <= 150.",
        examples=[15.5],
    ),
]


# gc=False: a batch decodes many patients per request, and every tracked object brings the
# cyclic GC's next collection closer (full ones showed as p99 spikes on large batches). Scalar
# fields cannot form a cycle.
class Patient(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """One patient: the five inputs the model takes, as a client sends them."""

    Age: Age
    Sex: Annotated[SexValue, Meta(description="Sex: F or M.")]
    BP: Annotated[BPValue, Meta(description="Blood pressure level.")]
    Cholesterol: Annotated[CholesterolValue, Meta(description="Cholesterol level.")]
    Na_to_K: NaToK


# The one sample patient: the OpenAPI examples, the model's check at load and the tests use it;
# the README, the docs, the about page and examples/client.py show it (a test compares).
SAMPLE_PATIENT: Final = Patient(Age=45, Sex="M", BP="HIGH", Cholesterol="NORMAL", Na_to_K=15.5)

FEATURE_NAMES: Final[tuple[str, ...]] = Patient.__struct_fields__
NUMERIC_FEATURES: Final = ("Age", "Na_to_K")
CATEGORICAL_FEATURES: Final = ("Sex", "BP", "Cholesterol")
CLASSES: Final[tuple[str, ...]] = get_args(DrugClass)
TARGET: Final = "Drug"

# The original project's edges. Right-closed like pd.cut: a value equal to an edge belongs to the
# bin below it (19 is "<20s"). Only the interior edges matter: bins are open at both ends, so an
# Age of 85 falls in the top bin instead of in "no bin".
FIXED_BIN_EDGES: Final[dict[str, tuple[float, ...]]] = {
    "Age": (19, 29, 39, 49, 59, 69),
    "Na_to_K": (9, 19, 29),
}


class FieldSpec(msgspec.Struct, frozen=True):
    """What one input accepts, for documentation, forms and validation messages."""

    name: str
    type: Literal["integer", "number", "category"]
    description: str
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False


def _describe(field: msgspec.inspect.Field) -> FieldSpec:
    info: Any = field.type
    description = ""
    if isinstance(info, msgspec.inspect.Metadata):
        description = (info.extra_json_schema or {}).get("description", "")
        info = info.type
    if isinstance(info, msgspec.inspect.LiteralType):
        return FieldSpec(
            field.name, "category", description, allowed=tuple(str(v) for v in info.values)
        )
    if isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        return FieldSpec(
            field.name,
            "integer" if isinstance(info, msgspec.inspect.IntType) else "number",
            description,
            minimum=info.gt if info.gt is not None else info.ge,
            maximum=info.le,
            exclusive_minimum=info.gt is not None,
        )
    raise TypeError(f"unsupported field type for {field.name}: {info!r}")  # pragma: no cover


def _field_specs() -> tuple[FieldSpec, ...]:
    info = msgspec.inspect.type_info(Patient)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(_describe(f) for f in info.fields)


FIELDS: Final[tuple[FieldSpec, ...]] = _field_specs()
FIELDS_BY_NAME: Final[dict[str, FieldSpec]] = {f.name: f for f in FIELDS}


def normalise_label(raw: str) -> str | None:
    """Map a published label (``DrugY``, ``drugA`` ...) to its class name, or None if unknown."""
    candidate = raw.strip()
    if candidate[:4].lower() == "drug" and len(candidate) == 5:
        candidate = "Drug" + candidate[4:].upper()
    return candidate if candidate in CLASSES else None
