"""Partitions of a CSV or Parquet file: plan them, read one, write its scores, join the parts.

A CSV is cut at line ends into byte ranges; a Parquet file into its row groups. Each partition
is validated with ``training.dataset.parse_rows``, as the single-process path validates a whole
file, and reports problems by line: a partition counts its lines, so the caller turns its local
line numbers into the file's. For Parquet, "line" is the row's line in a CSV export with a
header (row 1 is line 2), so messages read the same for both formats.

pyarrow is imported only for Parquet (the ``batch`` extra).
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd

from drugclf.artifact import sha256_hex
from training.dataset import (
    Dataset,
    DatasetError,
    ParsedRows,
    Problem,
    check_header,
    load_dataset,
    parse_rows,
    summarise_problems,
)

FileFormat = Literal["csv", "parquet"]
SUFFIXES: Final[dict[str, FileFormat]] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# Small enough that a worker holds a few parsed partitions at once, large enough that the per-task
# overhead is paid rarely (sizes per partition: docs/batch.md, `--blocksize`).
DEFAULT_BLOCKSIZE: Final = 4 << 20
_BOUNDARY_READ: Final = 1 << 16


def file_format(path: Path) -> FileFormat:
    """CSV or Parquet, from the file name's suffix.

    Raises:
        DatasetError: any other suffix.
    """
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        known = ", ".join(SUFFIXES)
        raise DatasetError(f"{path}: unknown file type '{path.suffix}' (use {known})")
    return found


@dataclass(frozen=True)
class Partition:
    """One slice of the input: bytes ``[start, end)`` of a CSV, or row group ``start``."""

    index: int
    path: str
    format: FileFormat
    start: int
    end: int


@dataclass(frozen=True)
class Plan:
    """The input's checked header and its partitions, in file order."""

    columns: list[str]
    partitions: list[Partition]


def _open(path: Path) -> Any:
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: no such file") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _csv_header(path: Path) -> tuple[list[str], int]:
    """The header's fields and the byte offset where the data starts."""
    with _open(path) as handle:
        line = handle.readline()
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    header = next(csv.reader([text]), [])
    return header, len(line)


def _line_ends(path: Path, data_start: int, blocksize: int) -> list[int]:
    """Byte offsets that cut the file after a newline, about ``blocksize`` apart."""
    size = path.stat().st_size
    cuts = [data_start]
    with path.open("rb") as handle:
        target = data_start + blocksize
        while target < size:
            handle.seek(target)
            chunk = handle.read(_BOUNDARY_READ)
            while chunk and b"\n" not in chunk:
                more = handle.read(_BOUNDARY_READ)
                if not more:
                    break
                chunk += more
            newline = chunk.find(b"\n")
            if newline < 0:
                break
            cut = target + newline + 1
            if cut >= size:
                break
            cuts.append(cut)
            target = cut + blocksize
    cuts.append(size)
    return cuts


def plan(path: Path, blocksize: int = DEFAULT_BLOCKSIZE) -> Plan:
    """Check the header and cut the file into partitions.

    Raises:
        DatasetError: the file cannot be read, is empty, or misses a required column.
    """
    fmt = file_format(path)
    if fmt == "csv":
        header, data_start = _csv_header(path)
        columns = check_header(header, path, require_labels=False)
        cuts = _line_ends(path, data_start, blocksize)
        ranges = list(itertools.pairwise(cuts))
    else:
        metadata = _parquet(path).metadata
        columns = check_header(list(metadata.schema.names), path, require_labels=False)
        ranges = [(group, group + 1) for group in range(metadata.num_row_groups)]
    partitions = [Partition(i, str(path), fmt, start, end) for i, (start, end) in enumerate(ranges)]
    return Plan(columns, partitions)


def _parquet(path: Path) -> Any:
    import pyarrow.parquet as pq  # noqa: PLC0415 (the batch extra, only for Parquet)

    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a Parquet file ({exc})") from exc


def _as_text(value: object) -> str:
    """A Parquet cell as the text a CSV would hold, so that one validator checks both."""
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Rows:
    """A partition's rows checked, and how many lines of the file it covers."""

    parsed: ParsedRows
    lines: int


def read_partition(partition: Partition, columns: Sequence[str]) -> Rows:
    """Read and check one partition; line numbers in its problems count from its first line.

    Raises:
        DatasetError: the bytes are not UTF-8 (naming the byte in the file).
    """
    path = Path(partition.path)
    if partition.format == "csv":
        with path.open("rb") as handle:
            handle.seek(partition.start)
            raw = handle.read(partition.end - partition.start)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{path}: not UTF-8 text (byte {partition.start + exc.start})"
            ) from exc
        lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") or not raw else 1)
        return Rows(parse_rows(csv.reader(io.StringIO(text)), columns, first_line=1), lines)
    table = _parquet(path).read_row_group(partition.start)
    cells = [[_as_text(v) for v in table.column(name).to_pylist()] for name in columns]
    records = list(zip(*cells, strict=True))
    return Rows(parse_rows(records, columns, first_line=1), len(records))


def read_whole(path: Path) -> Dataset:
    """The whole file as one dataset (the single-process engine), validated.

    Raises:
        DatasetError: the file cannot be read or is invalid, by line and column.
    """
    if file_format(path) == "csv":
        return load_dataset(path, require_labels=False)
    layout = plan(path)
    frames: list[pd.DataFrame] = []
    labels: list[pd.Series] = []
    problems: list[Problem] = []
    count, lines = 0, 1
    for partition in layout.partitions:
        rows = read_partition(partition, layout.columns)
        problems += [shifted(p, lines) for p in rows.parsed.problems]
        count += rows.parsed.problem_count
        lines += rows.lines
        if rows.parsed.features is not None:
            frames.append(rows.parsed.features)
            if rows.parsed.labels is not None:
                labels.append(rows.parsed.labels)
    if count:
        raise DatasetError(summarise_problems(path, problems, count))
    if lines == 1:
        raise DatasetError(f"{path}: the file has a header but no data rows")
    features = pd.concat(frames, ignore_index=True)
    series = pd.concat(labels, ignore_index=True) if labels else None
    return Dataset(features, series, sha256_hex(path.read_bytes()), path)


def shifted(problem: Problem, lines_before: int) -> Problem:
    """A partition's problem, its line counted from the top of the file."""
    line = None if problem.line is None else problem.line + lines_before
    return Problem(line, problem.column, problem.message)


def write_frame(frame: pd.DataFrame, path: Path, fmt: FileFormat, *, header: bool = True) -> None:
    """Write scored rows as CSV or Parquet."""
    if fmt == "csv":
        frame.to_csv(path, index=False, header=header)
    else:
        frame.to_parquet(path, index=False)


def part_path(staging: Path, index: int, fmt: FileFormat) -> Path:
    """Where partition ``index`` writes its scored rows."""
    return staging / f"part-{index:06d}.{fmt}"


def staging_folder(output: Path) -> Path:
    """A new hidden folder beside the output, for the parts and the file being joined."""
    folder = output.parent / f".{output.name}.parts-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def join_parts(parts: Sequence[Path], output: Path, fmt: FileFormat, staging: Path) -> None:
    """Join the parts in order into ``output``, which appears whole or not at all."""
    joined = staging / f"joined.{fmt}"
    if fmt == "csv":
        # The first part carries the header; the others are appended as bytes.
        with joined.open("wb") as target:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, target, 1 << 20)
    else:
        import pyarrow.parquet as pq  # noqa: PLC0415

        schema = pq.read_schema(parts[0])
        with pq.ParquetWriter(joined, schema) as writer:
            for part in parts:
                writer.write_table(pq.read_table(part).cast(schema))
    os.replace(joined, output)
