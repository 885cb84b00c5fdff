"""Patients for load: valid ones across the whole contract and from the dataset, and bad ones.

Valid patients come from :data:`drugclf.contract.FIELDS` (not from a copy of the ranges), so when
the contract changes the load changes with it. Every generated patient is checked against
:class:`drugclf.contract.Patient` by the tests.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from drugclf.contract import FIELDS, FIELDS_BY_NAME, FieldSpec, Patient

PatientDict = dict[str, Any]

DEFAULT_DATA: Final = Path(__file__).resolve().parent.parent / "data" / "drug200.csv"
# Share of generated patients that sit exactly on a range edge (0, 120, the smallest ratio, 150):
# edges are where validation and binning bugs live, so the load visits them often.
EDGE_SHARE: Final = 0.05
# The smallest Na_to_K we send when the minimum is exclusive (> 0).
EXCLUSIVE_STEP: Final = 0.001


def _random_value(spec: FieldSpec, rng: random.Random) -> Any:
    if spec.type == "category":
        assert spec.allowed is not None
        return rng.choice(spec.allowed)
    assert spec.minimum is not None and spec.maximum is not None
    low = spec.minimum + (EXCLUSIVE_STEP if spec.exclusive_minimum else 0)
    if spec.type == "integer":
        low_int, high_int = math.ceil(low), math.floor(spec.maximum)
        if rng.random() < EDGE_SHARE:
            return rng.choice((low_int, high_int))
        return rng.randint(low_int, high_int)
    if rng.random() < EDGE_SHARE:
        return rng.choice((low, spec.maximum))
    return round(rng.uniform(low, spec.maximum), 3) or low


def random_patient(rng: random.Random) -> PatientDict:
    """A valid patient drawn uniformly across every field's allowed values and range."""
    return {spec.name: _random_value(spec, rng) for spec in FIELDS}


def load_dataset(path: Path = DEFAULT_DATA) -> list[PatientDict]:
    """The dataset's rows as request bodies (the five inputs, the label dropped).

    Each row goes through :class:`Patient`, so a row the contract refuses fails loudly here
    instead of turning into a spurious 422 under load.
    """
    patients = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            fields = {name: row[name] for name in Patient.__struct_fields__}
            patient = msgspec.convert(fields, Patient, strict=False)
            patients.append(msgspec.structs.asdict(patient))
    return patients


class PatientSource:
    """Valid patients, a share from the dataset and the rest across the contract's ranges."""

    def __init__(
        self,
        rng: random.Random,
        dataset: Sequence[PatientDict] = (),
        dataset_share: float = 0.5,
    ) -> None:
        self.rng = rng
        self.dataset = list(dataset)
        self.dataset_share = dataset_share if self.dataset else 0.0

    def one(self) -> PatientDict:
        """One valid patient."""
        if self.rng.random() < self.dataset_share:
            return dict(self.rng.choice(self.dataset))
        return random_patient(self.rng)

    def many(self, count: int) -> list[PatientDict]:
        """``count`` valid patients."""
        return [self.one() for _ in range(count)]


def batch_size(rng: random.Random, max_size: int) -> int:
    """A batch size between 1 and ``max_size``, mostly small as real clients send.

    Log-uniform: sizes 1-10, 10-100 and 100-1,000 are equally likely, so large batches are
    exercised without dominating the CPU of a 2-core machine.
    """
    return min(max_size, max(1, int(10 ** rng.uniform(0, math.log10(max_size)))))


# --- bad traffic ---------------------------------------------------------------------------------
# Each builder returns (label, body bytes). The label names the request in Locust's statistics so a
# server that accepts one kind of bad input shows exactly which.
BadRequest = tuple[str, bytes]


def _encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def _wrong_type(rng: random.Random, source: PatientSource) -> BadRequest:
    patient = source.one()
    name = rng.choice(list(FIELDS_BY_NAME))
    spec = FIELDS_BY_NAME[name]
    patient[name] = rng.choice(
        [[1], {"x": 1}, True, None] + ([45] if spec.type == "category" else ["45"])
    )
    return f"wrong type ({name})", _encode(patient)


def _out_of_range(rng: random.Random, source: PatientSource) -> BadRequest:
    patient = source.one()
    numeric = [f for f in FIELDS if f.type != "category"]
    categorical = [f for f in FIELDS if f.type == "category"]
    spec = rng.choice(numeric + categorical)
    if spec.type == "category":
        patient[spec.name] = rng.choice(["", "high", "UNKNOWN", "X"])
    else:
        assert spec.minimum is not None and spec.maximum is not None
        below = spec.minimum if spec.exclusive_minimum else spec.minimum - 1
        patient[spec.name] = rng.choice([below, spec.maximum + 1, -1_000_000])
    return f"out of range ({spec.name})", _encode(patient)


def _not_finite(rng: random.Random, source: PatientSource) -> BadRequest:
    # JSON has no NaN or Infinity, but lenient encoders emit them; a server must not accept them.
    patient = source.one()
    text = _encode(patient).decode()
    value = _encode(patient["Na_to_K"]).decode()
    bad = rng.choice(["NaN", "Infinity", "-Infinity", "1e999"])
    return f"not finite ({bad})", text.replace(f'"Na_to_K":{value}', f'"Na_to_K":{bad}').encode()


def _unknown_field(rng: random.Random, source: PatientSource) -> BadRequest:
    patient = source.one()
    patient[rng.choice(["Drug", "age", "Weight", "extra"])] = 1
    return "unknown field", _encode(patient)


def _missing_field(rng: random.Random, source: PatientSource) -> BadRequest:
    patient = source.one()
    del patient[rng.choice(list(FIELDS_BY_NAME))]
    return "missing field", _encode(patient)


def _broken_json(rng: random.Random, source: PatientSource) -> BadRequest:
    text = _encode(source.one())
    body = rng.choice(
        [
            text[: rng.randint(1, len(text) - 1)],
            text + b"}",
            b"{'Age': 30}",
            b"",
            b"\xff\xfe",
            b"null",
        ]
    )
    return "broken json", body


def _bad_batch(rng: random.Random, source: PatientSource) -> BadRequest:
    patients = source.many(rng.randint(2, 5))
    patients[rng.randrange(len(patients))]["Age"] = -1
    return "batch with one bad patient", _encode(patients)


def _empty_batch(rng: random.Random, source: PatientSource) -> BadRequest:
    return "empty batch", b"[]"


BAD_BUILDERS: Final[tuple[Callable[[random.Random, PatientSource], BadRequest], ...]] = (
    _wrong_type,
    _out_of_range,
    _not_finite,
    _unknown_field,
    _missing_field,
    _broken_json,
    _bad_batch,
    _empty_batch,
)


def bad_request(rng: random.Random, source: PatientSource) -> BadRequest:
    """One invalid body of a random kind (:func:`oversized_batch` builds oversized batches)."""
    return rng.choice(BAD_BUILDERS)(rng, source)


def oversized_batch(source: PatientSource, max_size: int) -> bytes:
    """A batch one patient over the server's maximum."""
    return _encode(source.many(max_size + 1))
