"""The load tests' patients: valid ones obey the contract, bad ones break it."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drugclf.contract import FIELDS, Patient
from loadtests.patients import (
    BAD_BUILDERS,
    PatientSource,
    batch_size,
    load_dataset,
    oversized_batch,
    random_patient,
)


def decode_patients(body: bytes) -> Patient | list[Patient]:
    return msgspec.json.decode(body, type=Patient | list[Patient])


@given(seed=st.integers(min_value=0, max_value=2**32))
@settings(max_examples=200)
def test_random_patients_are_valid(seed: int) -> None:
    patient = random_patient(random.Random(seed))
    decoded = decode_patients(msgspec.json.encode(patient))
    assert isinstance(decoded, Patient)


def test_random_patients_cover_every_value_and_both_edges() -> None:
    rng = random.Random(0)
    patients = [random_patient(rng) for _ in range(5000)]
    for spec in FIELDS:
        seen = [p[spec.name] for p in patients]
        if spec.type == "category":
            assert set(seen) == set(spec.allowed or ())
        else:
            assert spec.maximum is not None and spec.minimum is not None
            assert max(seen) == spec.maximum
            if spec.exclusive_minimum:
                assert min(seen) > spec.minimum
                assert min(seen) < spec.minimum + 0.01
            else:
                assert min(seen) == spec.minimum


def test_dataset_rows_are_valid_patients() -> None:
    rows = load_dataset()
    assert len(rows) == 200
    decoded = decode_patients(msgspec.json.encode(rows))
    assert isinstance(decoded, list) and len(decoded) == 200


def test_source_mixes_dataset_and_random() -> None:
    dataset = load_dataset()
    source = PatientSource(random.Random(1), dataset, dataset_share=0.5)
    patients = source.many(400)
    from_dataset = sum(p in dataset for p in patients)
    assert 100 < from_dataset < 300
    msgspec.json.decode(msgspec.json.encode(patients), type=list[Patient])


def test_source_mutations_do_not_change_the_dataset() -> None:
    dataset = load_dataset()
    source = PatientSource(random.Random(2), dataset, dataset_share=1.0)
    source.one()["Age"] = -1
    assert all(row["Age"] >= 0 for row in dataset)


@pytest.mark.parametrize("max_size", [1, 10, 1000])
def test_batch_sizes_stay_in_range(max_size: int) -> None:
    rng = random.Random(3)
    sizes = [batch_size(rng, max_size) for _ in range(2000)]
    assert min(sizes) == 1
    assert max(sizes) <= max_size
    if max_size == 1000:
        assert max(sizes) >= 500  # large batches do happen


@pytest.mark.parametrize("builder", BAD_BUILDERS, ids=lambda b: b.__name__.strip("_"))
def test_bad_requests_are_refused_by_the_contract(builder: object) -> None:
    rng = random.Random(4)
    source = PatientSource(rng, load_dataset())
    for _ in range(50):
        label, body = builder(rng, source)  # type: ignore[operator]
        assert label
        with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
            decoded = decode_patients(body)
            if decoded == []:  # an empty batch is valid JSON but no patient to predict
                raise msgspec.ValidationError("empty batch")


def test_oversized_batch_is_one_over_the_maximum() -> None:
    body = oversized_batch(PatientSource(random.Random(5)), 10)
    assert len(msgspec.json.decode(body, type=list[Patient])) == 11
