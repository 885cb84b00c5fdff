"""Training runs: what was trained, on which data, how well, and whether it was exported.

Each run is a folder ``runs/<run id>/`` with ``run.json`` and the fitted scikit-learn pipeline
(``pipeline.pkl``), kept for audit and for the parity gate. The pickle lives here, apart from
the artifacts that serving reads: serving never unpickles anything.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec
from imblearn.pipeline import Pipeline as ImbPipeline

from drugclf.artifact import Metrics, Params, ParitySummary

RUN_FILE: Final = "run.json"
PIPELINE_FILE: Final = "pipeline.pkl"


class RunError(Exception):
    """A run cannot be found or read."""


class RunRecord(msgspec.Struct):
    """One training run as recorded in ``run.json``."""

    run_id: str
    created_at: str
    data_path: str
    data_sha256: str
    data_rows: int
    params: Params
    test_index: list[int]
    test_accuracy: float
    metrics: Metrics | None = None
    exported_version: str | None = None
    parity: ParitySummary | None = None
    promoted: bool = False


@dataclass(frozen=True)
class RunStore:
    """Runs under one folder."""

    root: Path

    def new_id(self, now: datetime | None = None) -> str:
        """A sortable, unique run id."""
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S-%f")
        return f"{stamp}-{os.getpid()}"

    def save(self, record: RunRecord, pipeline: ImbPipeline | None = None) -> Path:
        """Write (or rewrite) a run's record, and its pipeline when given."""
        folder = self.root / record.run_id
        folder.mkdir(parents=True, exist_ok=True)
        if pipeline is not None:
            with (folder / PIPELINE_FILE).open("wb") as handle:
                pickle.dump(pipeline, handle, protocol=pickle.HIGHEST_PROTOCOL)
        encoded = msgspec.json.format(msgspec.json.encode(record), indent=2)
        tmp = folder / f".{RUN_FILE}.tmp"
        tmp.write_bytes(encoded + b"\n")
        tmp.replace(folder / RUN_FILE)
        return folder

    def load(self, run_id: str | None = None) -> RunRecord:
        """A run by id, or the latest one."""
        if run_id is None:
            ids = self.ids()
            if not ids:
                raise RunError(f"no training runs in {self.root}: run `python -m training train`")
            run_id = ids[-1]
        path = self.root / run_id / RUN_FILE
        try:
            return msgspec.json.decode(path.read_bytes(), type=RunRecord)
        except FileNotFoundError as exc:
            raise RunError(f"no run {run_id!r} in {self.root}") from exc
        except msgspec.DecodeError as exc:
            raise RunError(f"{path} is corrupt: {exc}") from exc

    def load_pipeline(self, run_id: str) -> ImbPipeline:
        """The fitted pipeline of a run (a pickle this project wrote itself)."""
        path = self.root / run_id / PIPELINE_FILE
        try:
            with path.open("rb") as handle:
                pipeline: ImbPipeline = pickle.load(handle)  # noqa: S301 (our own run folder)
        except FileNotFoundError as exc:
            raise RunError(f"run {run_id} has no fitted pipeline ({path})") from exc
        return pipeline

    def ids(self) -> list[str]:
        """Run ids, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / RUN_FILE).is_file())

    def all(self) -> list[RunRecord]:
        """Every readable run, oldest first."""
        return [self.load(run_id) for run_id in self.ids()]
