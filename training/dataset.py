"""Load and validate a drug200-style CSV against the feature contract.

Every problem in a file is collected and reported at once, naming the line and the column, so
a user fixes a bad file in one pass instead of one error at a time.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from drugclf.artifact import sha256_hex
from drugclf.contract import CLASSES, FEATURE_NAMES, FIELDS, TARGET, FieldSpec, normalise_label

logger = logging.getLogger(__name__)

MAX_REPORTED_PROBLEMS: Final = 20


class DatasetError(Exception):
    """A dataset cannot be used; the message names the file, lines and columns at fault."""


@dataclass(frozen=True)
class Problem:
    """One invalid cell (or a whole-file problem when line is None)."""

    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass(frozen=True)
class Dataset:
    """A validated dataset: features with contract dtypes, labels normalised, and provenance."""

    features: pd.DataFrame
    labels: pd.Series | None
    sha256: str
    path: Path

    @property
    def rows(self) -> int:
        """Number of rows."""
        return len(self.features)


def _parse_cell(spec: FieldSpec, raw: str) -> tuple[object, str | None]:  # noqa: PLR0911
    """Parse one cell per its field spec; returns (value, problem or None)."""
    text = raw.strip()
    if text == "":
        return None, "missing value"
    if spec.type == "category":
        assert spec.allowed is not None
        if text not in spec.allowed:
            return None, f"'{text}' is not one of {', '.join(spec.allowed)}"
        return text, None
    try:
        number = float(text)
    except ValueError:
        kind = "an integer" if spec.type == "integer" else "a number"
        return None, f"'{text}' is not {kind}"
    if not math.isfinite(number):
        return None, f"'{text}' is not a finite number"
    if spec.type == "integer":
        if not number.is_integer():
            return None, f"'{text}' is not a whole number"
        number = int(number)
    low, high = spec.minimum, spec.maximum
    if low is not None and (number <= low if spec.exclusive_minimum else number < low):
        bound = f"> {low:g}" if spec.exclusive_minimum else f">= {low:g}"
        return None, f"{text} is out of range: must be {bound}"
    if high is not None and number > high:
        return None, f"{text} is out of range: must be <= {high:g}"
    return number, None


def summarise_problems(path: Path, problems: Sequence[Problem], total: int | None = None) -> str:
    """One message for a file's problems: the count, then the first ones by line.

    ``total`` counts problems beyond those listed (a partitioned reader keeps only the first
    few of each partition); by default, ``len(problems)``.
    """
    count = len(problems) if total is None else total
    shown = "\n".join(f"  - {p}" for p in problems[:MAX_REPORTED_PROBLEMS])
    more = count - min(len(problems), MAX_REPORTED_PROBLEMS)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    noun = "problem" if count == 1 else "problems"
    return f"{path}: {count} {noun} (line 1 is the header):\n{shown}{tail}"


def _check_header(header: list[str], path: Path, require_labels: bool) -> list[str]:
    columns = [h.strip() for h in header]
    required = list(FEATURE_NAMES) + ([TARGET] if require_labels else [])
    missing = [c for c in required if c not in columns]
    if missing:
        raise DatasetError(
            f"{path}: missing required column(s) {', '.join(missing)}; found {', '.join(columns)}"
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise DatasetError(f"{path}: duplicated column(s) {', '.join(duplicated)}")
    return columns


@dataclass(frozen=True)
class ParsedRows:
    """Rows checked against the contract: typed columns when all are valid, else the problems.

    ``problems`` holds at most ``MAX_REPORTED_PROBLEMS`` of them; ``problem_count`` counts all.
    """

    features: pd.DataFrame | None
    labels: pd.Series | None
    problems: list[Problem]
    problem_count: int
    rows: int


def check_header(header: list[str], path: Path, *, require_labels: bool) -> list[str]:
    """The header's column names, stripped.

    Raises:
        DatasetError: a required column is missing or a column is duplicated.
    """
    if not any(h.strip() for h in header):
        raise DatasetError(f"{path}: the file is empty (expected a header row)")
    return _check_header(header, path, require_labels)


def parse_rows(
    records: Iterable[Sequence[str]], columns: Sequence[str], *, first_line: int = 2
) -> ParsedRows:
    """Check data rows (after the header) against the contract, cell by cell.

    Args:
        records: the rows' fields, as ``csv.reader`` yields them.
        columns: the header's column names (``check_header``).
        first_line: the line number of the first record, for messages (2 after a header; a
            partition of a larger file starts further down).
    """
    index = {name: columns.index(name) for name in columns}
    has_labels = TARGET in index
    problems: list[Problem] = []
    count = 0

    def problem(line: int, column: str | None, message: str) -> None:
        nonlocal count
        count += 1
        if len(problems) < MAX_REPORTED_PROBLEMS:
            problems.append(Problem(line, column, message))

    values: dict[str, list[object]] = {name: [] for name in FEATURE_NAMES}
    labels: list[str] = []
    rows = 0
    for line, row in enumerate(records, start=first_line):
        rows += 1
        if not row:
            problem(line, None, "empty line")
            continue
        if len(row) != len(columns):
            problem(line, None, f"has {len(row)} fields, header has {len(columns)}")
            continue
        for spec in FIELDS:
            value, message = _parse_cell(spec, row[index[spec.name]])
            if message:
                problem(line, spec.name, message)
            values[spec.name].append(value)
        if has_labels:
            raw_label = row[index[TARGET]].strip()
            label = normalise_label(raw_label)
            if label is None:
                shown = f"'{raw_label}'" if raw_label else "missing value"
                problem(line, TARGET, f"{shown} is not a known drug label")
            labels.append(label or "")
    if count:
        return ParsedRows(None, None, problems, count, rows)
    features = pd.DataFrame(
        {
            spec.name: pd.Series(
                values[spec.name],
                dtype={"integer": np.int64, "number": np.float64, "category": object}[spec.type],
            )
            for spec in FIELDS
        }
    )
    series = pd.Series(labels, name=TARGET, dtype=object) if has_labels else None
    return ParsedRows(features, series, [], 0, rows)


def parse_csv(raw: bytes, path: Path, *, require_labels: bool = True) -> Dataset:
    """Validate CSV bytes in the drug200 schema.

    Args:
        raw: the file's bytes.
        path: where it came from (for messages).
        require_labels: whether the ``Drug`` column must be present (False for scoring).

    Raises:
        DatasetError: with every problem found, by line and column.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise DatasetError(f"{path}: the file is empty (expected a header row)")
    parsed = parse_rows(reader, check_header(header, path, require_labels=require_labels))
    if parsed.rows == 0:
        raise DatasetError(f"{path}: the file has a header but no data rows")
    if parsed.features is None:
        raise DatasetError(summarise_problems(path, parsed.problems, parsed.problem_count))
    return Dataset(
        features=parsed.features, labels=parsed.labels, sha256=sha256_hex(raw), path=path
    )


def require_trainable(dataset: Dataset, min_rows_per_class: int) -> None:
    """Refuse a labelled dataset that cannot train a model of every class.

    Every class must be present (else the model answers fewer classes than the contract
    promises) with at least ``min_rows_per_class`` rows (stratified cross-validation puts one
    in each fold).

    Raises:
        DatasetError: naming each class that falls short and its count.
    """
    if dataset.labels is None:
        raise DatasetError(f"{dataset.path}: training needs the {TARGET} column")
    counts = dataset.labels.value_counts()
    short = [
        f"{name} has {int(counts.get(name, 0))}"
        for name in CLASSES
        if counts.get(name, 0) < min_rows_per_class
    ]
    if short:
        raise DatasetError(
            f"{dataset.path}: too few rows to train: {', '.join(short)}; every class needs at "
            f"least {min_rows_per_class} rows"
        )


def load_dataset(path: Path, *, require_labels: bool = True) -> Dataset:
    """Read and validate a CSV file.

    Raises:
        DatasetError: the file cannot be read or is invalid.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: no such file") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    dataset = parse_csv(raw, path, require_labels=require_labels)
    logger.info("loaded %s: %d rows, sha256 %s", path, dataset.rows, dataset.sha256[:12])
    return dataset
