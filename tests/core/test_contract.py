"""The feature contract: strict decoding, field specs, labels, and that it stays light."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drugclf.contract import (
    CLASSES,
    FEATURE_NAMES,
    FIELDS_BY_NAME,
    NA_TO_K_MAX,
    SAMPLE_PATIENT,
    Patient,
    normalise_label,
)
from tests.support import ROOT

decoder = msgspec.json.Decoder(Patient)
GOOD: dict[str, object] = msgspec.to_builtins(SAMPLE_PATIENT)


def test_a_valid_patient_decodes() -> None:
    assert decoder.decode(msgspec.json.encode(GOOD)) == Patient(**GOOD)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"Age": "45"}, "$.Age"),
        ({"Age": True}, "$.Age"),
        ({"Age": 45.5}, "$.Age"),
        ({"Age": 121}, "$.Age"),
        ({"Age": -1}, "$.Age"),
        ({"Sex": "male"}, "$.Sex"),
        ({"BP": "high"}, "$.BP"),
        ({"Cholesterol": "LOW"}, "$.Cholesterol"),
        ({"Na_to_K": 0}, "$.Na_to_K"),
        ({"Na_to_K": NA_TO_K_MAX + 0.001}, "$.Na_to_K"),
        ({"Na_to_K": "15"}, "$.Na_to_K"),
        ({"extra": 1}, "unknown field `extra`"),
    ],
)
def test_invalid_fields_are_named(change: dict[str, object], where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=where.replace("$", r"\$")):
        decoder.decode(msgspec.json.encode({**GOOD, **change}))


def test_huge_and_non_finite_numbers_are_refused() -> None:
    for literal in (b"1e400", b"NaN", b"Infinity"):
        body = b'{"Age":45,"Sex":"M","BP":"HIGH","Cholesterol":"NORMAL","Na_to_K":' + literal + b"}"
        with pytest.raises(msgspec.DecodeError):
            decoder.decode(body)


def test_field_specs_describe_the_struct() -> None:
    assert tuple(FIELDS_BY_NAME) == FEATURE_NAMES
    assert FIELDS_BY_NAME["BP"].allowed == ("HIGH", "LOW", "NORMAL")
    assert FIELDS_BY_NAME["Age"].minimum == 0 and FIELDS_BY_NAME["Age"].maximum == 120
    assert FIELDS_BY_NAME["Na_to_K"].exclusive_minimum


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("drugA", "DrugA"),
        ("DrugY", "DrugY"),
        (" drugx ", "DrugX"),
        ("DRUGB", "DrugB"),
        ("drugZ", None),
        ("", None),
        ("Y", None),
    ],
)
def test_labels_normalise(raw: str, label: str | None) -> None:
    assert normalise_label(raw) == label


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_na_to_k_bound_is_consistent(value: float) -> None:
    body = msgspec.json.encode({**GOOD, "Na_to_K": value}) if math.isfinite(value) else None
    if body is None:
        return
    try:
        decoder.decode(body)
        ok = True
    except msgspec.ValidationError:
        ok = False
    assert ok == (0 < value <= NA_TO_K_MAX)


def test_contract_imports_nothing_heavy() -> None:
    code = "import sys, drugclf.contract, drugclf.artifact, drugclf.registry; print(sorted(m for m in ('numpy','pandas','sklearn','onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert len(CLASSES) == 5


@pytest.mark.parametrize(
    "shown_in",
    [
        "README.md",
        "docs/serving.md",
        "docs/monitoring.md",
        "serving/static/ui/pages/about.html",
        "examples/client.py",  # standard library only, so it writes the patient out
    ],
)
def test_the_sample_patient_people_read_is_the_contracts(shown_in: str) -> None:
    sample = json.dumps(msgspec.to_builtins(SAMPLE_PATIENT))
    assert sample in (ROOT / shown_in).read_text(), f"{shown_in} shows another sample patient"
