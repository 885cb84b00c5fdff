"""The cell table's lookup: the comparisons the model makes, one patient or a batch, and its file."""

from __future__ import annotations

import io

import numpy as np
import pytest

from drugclf.cells import CellTable, CellTableError, NumericEdges
from drugclf.contract import CATEGORICAL_FEATURES, CLASSES, FIELDS_BY_NAME, Patient
from tests.support import random_patients

SPREAD = 2.0**12
"""The test tables hold cell / SPREAD in their first probability: below 1, and exact."""
CATEGORIES = {name: tuple(FIELDS_BY_NAME[name].allowed or ()) for name in CATEGORICAL_FEATURES}


def _table(age: NumericEdges, na_to_k: NumericEdges) -> CellTable:
    """A table whose probabilities spell out the cell number, so a lookup shows where it went."""
    shape = (age.cells, 2, 3, 2, na_to_k.cells)
    cells = int(np.prod(shape))
    probabilities = np.zeros((cells, len(CLASSES)), np.float32)
    probabilities[:, 0] = np.arange(cells, dtype=np.float32) / SPREAD  # exact: a power of two
    labels = np.arange(cells, dtype=np.int64) % len(CLASSES)
    return CellTable({"Age": age, "Na_to_K": na_to_k}, CATEGORIES, labels, probabilities)


def _columns(patients: list[Patient]) -> dict[str, np.ndarray]:
    return {
        name: np.asarray([getattr(p, name) for p in patients], dtype=dtype).reshape(-1, 1)
        for name, dtype in (
            ("Age", np.int64),
            ("Sex", object),
            ("BP", object),
            ("Cholesterol", object),
            ("Na_to_K", np.float64),
        )
    }


def _expected_cell(table: CellTable, p: Patient) -> int:
    """The cell by the definition: count(value > edge), in the axis's precision."""
    index = []
    for name in ("Age", "Sex", "BP", "Cholesterol", "Na_to_K"):
        value = getattr(p, name)
        if name in table.numeric:
            axis = table.numeric[name]
            if axis.float32:
                index.append(int(np.sum(np.float32(value) > axis.edges.astype(np.float32))))
            else:
                index.append(int(np.sum(float(value) > axis.edges)))
        else:
            index.append(table.categories[name].index(value))
    return int(np.ravel_multi_index(tuple(index), table.shape))


@pytest.mark.parametrize("float32", [False, True])
def test_one_patient_and_a_batch_find_the_cell_the_definition_gives(float32: bool) -> None:
    edges = [np.array([19.0, 29.0, 49.0]), np.array([9.0, 15.015, 29.0])]
    if float32:
        edges = [e.astype(np.float32).astype(np.float64) for e in edges]
    table = _table(NumericEdges(edges[0], float32), NumericEdges(edges[1], float32))
    patients = random_patients(2_000, seed=7)
    # On every edge and one float step either side of it.
    for e in edges[1]:
        for v in (np.nextafter(e, 0.0), e, np.nextafter(e, np.inf)):
            patients.append(
                Patient(Age=29, Sex="F", BP="LOW", Cholesterol="HIGH", Na_to_K=float(v))
            )
    for age in (19, 20, 29, 30, 49, 50, 0, 120):
        patients.append(Patient(Age=age, Sex="M", BP="NORMAL", Cholesterol="NORMAL", Na_to_K=9.0))
    expected = [_expected_cell(table, p) for p in patients]
    assert [table.cell_of(p) for p in patients] == expected
    assert table.cells_of(_columns(patients)).tolist() == expected
    labels, probabilities = table.predict(patients)
    assert (probabilities[:, 0] * SPREAD).astype(np.int64).tolist() == expected
    assert labels == [CLASSES[c % len(CLASSES)] for c in expected]
    column_labels, column_probabilities = table.predict_columns(_columns(patients))
    assert column_labels.tolist() == labels
    assert np.array_equal(column_probabilities, probabilities)


def test_a_float32_axis_compares_after_the_cast() -> None:
    """15.015 is not a float32: a value just above it can round onto the float32 edge."""
    edge32 = float(np.float32(15.015))
    above = float(np.nextafter(edge32, np.inf))  # float64 above the edge, float32 equal to it
    assert np.float32(above) == np.float32(edge32)
    table32 = _table(NumericEdges(np.array([50.0]), False), NumericEdges(np.array([edge32]), True))
    table64 = _table(NumericEdges(np.array([50.0]), False), NumericEdges(np.array([edge32]), False))
    p = Patient(Age=30, Sex="F", BP="HIGH", Cholesterol="HIGH", Na_to_K=above)
    assert table32.cell_of(p) == table32.cells_of(_columns([p]))[0] == 0
    assert table64.cell_of(p) == table64.cells_of(_columns([p]))[0] == 1


def test_answers_are_read_only_views() -> None:
    table = _table(NumericEdges(np.array([50.0]), False), NumericEdges(np.array([10.0]), False))
    labels, row = table.predict_one(
        Patient(Age=60, Sex="M", BP="LOW", Cholesterol="NORMAL", Na_to_K=12.0)
    )
    assert row.shape == (1, len(CLASSES)) and labels == [
        CLASSES[
            table.cell_of(Patient(Age=60, Sex="M", BP="LOW", Cholesterol="NORMAL", Na_to_K=12.0))
            % len(CLASSES)
        ]
    ]
    with pytest.raises(ValueError, match="read-only"):
        row[0, 0] = 1.0


def test_the_file_round_trips_and_runs_no_pickle() -> None:
    table = _table(
        NumericEdges(np.array([19.0, 50.0]), False), NumericEdges(np.array([10.0]), True)
    )
    again = CellTable.from_bytes(table.to_bytes())
    assert again.shape == table.shape
    assert np.array_equal(again.probabilities, table.probabilities)
    assert np.array_equal(again.label_indices, table.label_indices)
    assert again.numeric["Na_to_K"].float32 and not again.numeric["Age"].float32
    assert again.categories == table.categories
    # An object array would need pickle to load: refused, not run.
    buffer = io.BytesIO()
    np.savez(buffer, classes=np.asarray(CLASSES, dtype=object))
    with pytest.raises(CellTableError, match="not a cell table"):
        CellTable.from_bytes(buffer.getvalue())


def _saved(**arrays: np.ndarray) -> bytes:
    table = _table(NumericEdges(np.array([50.0]), False), NumericEdges(np.array([10.0]), False))
    with np.load(io.BytesIO(table.to_bytes())) as npz:
        contents = {key: npz[key] for key in npz.files}
    contents.update(arrays)
    for key in [k for k, v in arrays.items() if v.size == 0 and v.dtype == np.bool_]:
        del contents[key]
    buffer = io.BytesIO()
    np.savez(buffer, **contents)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip", "not a cell table"),
        (_saved(classes=np.asarray(["DrugA", "DrugB"])), "classes"),
        (_saved(probabilities=np.zeros((3, 5), np.float32)), "probabilities are"),
        (_saved(probabilities=np.zeros((48, 5), np.float64)), "probabilities are"),
        (_saved(probabilities=np.full((48, 5), 1.5, np.float32)), "from 0 to 1"),
        (_saved(probabilities=np.full((48, 5), np.nan, np.float32)), "from 0 to 1"),
        (_saved(labels=np.full(48, 1.0)), "whole class indices"),
        (_saved(labels=np.full(48, 9, np.int64)), "class indices"),
        (_saved(Age__edges=np.array([50.0, 20.0])), "not sorted"),
        (_saved(Sex__categories=np.asarray(["F", "X"])), "categories"),
        (_saved(Age__float32=np.zeros(0, np.bool_)), "lacks the array Age__float32"),
    ],
)
def test_a_bad_file_is_refused_with_its_reason(data: bytes, message: str) -> None:
    with pytest.raises(CellTableError, match=message):
        CellTable.from_bytes(data)
