"""Data contract: the real file loads; every kind of bad file is refused with lines and columns."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drugclf.contract import CLASSES, FEATURE_NAMES
from training.dataset import DatasetError, load_dataset, parse_csv

PUBLISHED_SHA256 = "9517b83a24a3d7d62eb3920752d409ea187e4a1ff8ae94b4fd946a8e7f63f3b2"
HEADER = "Age,Sex,BP,Cholesterol,Na_to_K,Drug"
GOOD = "23,F,HIGH,HIGH,25.355,DrugY"


def test_real_dataset_loads_with_normalised_labels(data_path: Path) -> None:
    dataset = load_dataset(data_path)
    assert dataset.rows == 200
    assert dataset.sha256 == PUBLISHED_SHA256 == hashlib.sha256(data_path.read_bytes()).hexdigest()
    assert list(dataset.features.columns) == list(FEATURE_NAMES)
    assert dataset.labels is not None
    assert set(dataset.labels) == set(CLASSES)
    assert dataset.labels.value_counts().to_dict() == {
        "DrugY": 91,
        "DrugX": 54,
        "DrugA": 23,
        "DrugB": 16,
        "DrugC": 16,
    }
    assert str(dataset.features["Age"].dtype) == "int64"
    assert str(dataset.features["Na_to_K"].dtype) == "float64"


def _parse(text: str, require_labels: bool = True) -> None:
    parse_csv(text.encode(), Path("bad.csv"), require_labels=require_labels)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", "the file is empty"),
        (HEADER + "\n", "header but no data rows"),
        (
            "Age,Sex,BP,Cholesterol,Drug\n23,F,HIGH,HIGH,DrugY\n",
            "missing required column(s) Na_to_K",
        ),
        (f"{HEADER}\n23,F,HIGH,HIGH,25.355,DrugZ\n", "line 2, column Drug: 'DrugZ' is not a known"),
        (
            f"{HEADER}\n{GOOD}\n23,X,HIGH,HIGH,25.355,DrugY\n",
            "line 3, column Sex: 'X' is not one of F, M",
        ),
        (f"{HEADER}\n23,F,VERY,HIGH,25.355,DrugY\n", "line 2, column BP: 'VERY' is not one of"),
        (
            f"{HEADER}\n23,F,HIGH,LOW,25.355,DrugY\n",
            "column Cholesterol: 'LOW' is not one of HIGH, NORMAL",
        ),
        (
            f"{HEADER}\nabc,F,HIGH,HIGH,25.355,DrugY\n",
            "line 2, column Age: 'abc' is not an integer",
        ),
        (f"{HEADER}\n23.5,F,HIGH,HIGH,25.355,DrugY\n", "column Age: '23.5' is not a whole number"),
        (
            f"{HEADER}\n130,F,HIGH,HIGH,25.355,DrugY\n",
            "column Age: 130 is out of range: must be <= 120",
        ),
        (
            f"{HEADER}\n-1,F,HIGH,HIGH,25.355,DrugY\n",
            "column Age: -1 is out of range: must be >= 0",
        ),
        (f"{HEADER}\n23,F,HIGH,HIGH,NaN,DrugY\n", "column Na_to_K: 'NaN' is not a finite number"),
        (f"{HEADER}\n23,F,HIGH,HIGH,inf,DrugY\n", "column Na_to_K: 'inf' is not a finite number"),
        (f"{HEADER}\n23,F,HIGH,HIGH,-3,DrugY\n", "column Na_to_K: -3 is out of range: must be > 0"),
        (f"{HEADER}\n23,F,HIGH,HIGH,0,DrugY\n", "column Na_to_K: 0 is out of range: must be > 0"),
        (f"{HEADER}\n23,F,HIGH,HIGH,,DrugY\n", "line 2, column Na_to_K: missing value"),
        (f"{HEADER}\n23,F,HIGH,HIGH,25.3,\n", "line 2, column Drug: missing value is not a known"),
        (f"{HEADER}\n23,F,HIGH,HIGH\n", "line 2: has 4 fields, header has 6"),
        (f"{HEADER},Age\n{GOOD},4\n", "duplicated column(s) Age"),
        ("\xff\xfe".encode("latin-1").decode("latin-1") + HEADER, "not UTF-8"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(body: str, expected: str) -> None:
    raw = body.encode("latin-1") if body.startswith("\xff") else body.encode()
    with pytest.raises(DatasetError) as caught:
        parse_csv(raw, Path("bad.csv"))
    assert expected in str(caught.value)
    assert "bad.csv" in str(caught.value)


def test_all_problems_are_reported_at_once() -> None:
    body = f"{HEADER}\nabc,F,HIGH,HIGH,25.3,DrugY\n{GOOD}\n40,Q,HIGH,HIGH,-1,drugq\n"
    with pytest.raises(DatasetError) as caught:
        _parse(body)
    message = str(caught.value)
    assert "4 problems" in message
    for fragment in (
        "line 2, column Age",
        "line 4, column Sex",
        "line 4, column Na_to_K",
        "line 4, column Drug",
    ):
        assert fragment in message


def test_missing_file_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "nope.csv")


def test_scoring_files_need_no_labels_and_extra_columns_are_ignored() -> None:
    dataset = parse_csv(
        b"id,Age,Sex,BP,Cholesterol,Na_to_K\n7,61,M,LOW,NORMAL,9.5\n",
        Path("x.csv"),
        require_labels=False,
    )
    assert dataset.labels is None
    assert dataset.features.iloc[0].to_dict() == {
        "Age": 61,
        "Sex": "M",
        "BP": "LOW",
        "Cholesterol": "NORMAL",
        "Na_to_K": 9.5,
    }


def test_published_label_spellings_are_normalised() -> None:
    body = f"{HEADER}\n" + "\n".join(
        f"30,F,LOW,HIGH,10,{label}" for label in ("drugA", "drugB", "drugC", "drugX", "DrugY")
    )
    dataset = parse_csv(body.encode(), Path("x.csv"))
    assert dataset.labels is not None
    assert list(dataset.labels) == list(CLASSES)


cell = st.one_of(
    st.text(
        alphabet=st.characters(exclude_characters=',\n\r"', exclude_categories=["Cs"]),
        max_size=8,
    ),
    st.integers(-5, 200).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["F", "M", "HIGH", "LOW", "NORMAL", "drugA", "DrugY", ""]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(cell, min_size=6, max_size=6), min_size=1, max_size=5))
def test_validator_either_accepts_valid_rows_or_names_line_and_column(
    rows: list[list[str]],
) -> None:
    body = HEADER + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    try:
        dataset = parse_csv(body.encode(), Path("h.csv"))
    except DatasetError as exc:
        assert "h.csv" in str(exc)
        assert "line " in str(exc)
        return
    features = dataset.features
    assert features["Age"].between(0, 120).all()
    assert ((features["Na_to_K"] > 0) & (features["Na_to_K"] <= 150)).all()
    assert set(features["Sex"]) <= {"F", "M"}
    assert dataset.labels is not None
    assert set(dataset.labels) <= set(CLASSES)
