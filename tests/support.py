"""Helpers shared by the test suites: the data, a model trained by the real CLI, and registry
edits that make a version differ on purpose.

The real server process is started by ``loadtests.bench.server.ServerProcess`` (with
``free_port``), as the bench and the load tests start it: on a free loopback port, ready when
``GET /ready`` answers 200, stopped with its workers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
import numpy as np

from drugclf.artifact import METADATA_FILE, MODEL_FILE, ArtifactMetadata, read_metadata
from drugclf.contract import AGE_MAX, AGE_MIN, NA_TO_K_MAX, SAMPLE_PATIENT, Patient
from drugclf.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "drug200.csv"
# The contract's sample patient as a JSON body.
PATIENT: Final[dict[str, object]] = msgspec.to_builtins(SAMPLE_PATIENT)
# Small enough to train in seconds, big enough to behave like the real model on the dataset.
TEST_N_ESTIMATORS = 20
TEST_PARITY_CASES = 2000


@dataclass(frozen=True)
class Trained:
    """A suite's copy of the session model: its registry, run store, current version and metadata."""

    artifacts_dir: Path
    runs_dir: Path
    version: str
    metadata: ArtifactMetadata

    @classmethod
    def copy_of_session_model(cls, model_copy: Callable[[str], Path], name: str) -> Trained:
        """``model_copy(name)`` (the session fixture), read back."""
        base = model_copy(name)
        registry = Registry(base / "artifacts")
        version = registry.current_version()
        assert version is not None
        return cls(
            base / "artifacts", base / "runs", version, read_metadata(registry.resolve_current())
        )


def bare_env(**variables: str) -> dict[str, str]:
    """An environment of ``variables`` alone, for a process that must not see this one's.

    Coverage's own variables pass through, so that ``make test`` measures the process too.
    """
    kept = {name: value for name, value in os.environ.items() if name.startswith("COVERAGE_")}
    return {**kept, **variables}


def training_cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m training *args`` with its runs and registry in ``tmp``, in a bare environment."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            *args,
            "--runs-dir",
            str(tmp / "runs"),
            "--artifacts-dir",
            str(tmp / "artifacts"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=bare_env(PATH="/usr/bin:/bin", COLUMNS="120"),
    )


def train_with_cli(
    base: Path,
    *,
    n_estimators: int = TEST_N_ESTIMATORS,
    parity_cases: int = TEST_PARITY_CASES,
) -> str:
    """Train, export and promote with ``python -m training full`` into ``base/{artifacts,runs}``.

    Returns the promoted version.
    """
    subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "full",
            "--data",
            str(DATA),
            "--artifacts-dir",
            str(base / "artifacts"),
            "--runs-dir",
            str(base / "runs"),
            "--n-estimators",
            str(n_estimators),
            "--parity-cases",
            str(parity_cases),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    version = Registry(base / "artifacts").current_version()
    assert version is not None
    return version


def copy_model(source: Path, target: Path) -> str:
    """Copy a trained ``artifacts/`` and ``runs/`` pair (links kept); returns the current version."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("artifacts", "runs"):
        shutil.copytree(source / name, target / name, symlinks=True)
    version = Registry(target / "artifacts").current_version()
    assert version is not None
    return version


def edit_metadata(folder: Path, edit: Callable[[dict[str, object]], None]) -> None:
    """Rewrite a version's metadata.json through ``edit`` (to make it differ on purpose)."""
    meta = msgspec.to_builtins(read_metadata(folder))
    edit(meta)
    (folder / METADATA_FILE).write_bytes(msgspec.json.encode(meta))


def clone_version(
    registry: Registry,
    source: str,
    new_version: str,
    edit: Callable[[dict[str, object]], None] | None = None,
    model_bytes: bytes | None = None,
) -> str:
    """Publish a copy of ``source`` as ``new_version`` (metadata edited, model replaced)."""
    target = registry.root / new_version
    shutil.copytree(registry.root / source, target)

    def rename(meta: dict[str, object]) -> None:
        meta["version"] = new_version
        if edit is not None:
            edit(meta)

    edit_metadata(target, rename)
    if model_bytes is not None:
        (target / MODEL_FILE).write_bytes(model_bytes)
    return new_version


def point_current_at(registry: Registry, version: str) -> None:
    """Move ``current`` by hand, bypassing promote's checks (as an operator's ``ln -sfn`` would)."""
    tmp = registry.root / ".current.test.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(version, tmp)
    os.replace(tmp, registry.current_link)


def random_patients(n: int, seed: int = 3) -> list[Patient]:
    """``n`` valid patients drawn across the whole contract (every age, ratios up to the cap)."""
    rng = np.random.default_rng(seed)
    return [
        Patient(
            Age=int(rng.integers(AGE_MIN, AGE_MAX + 1)),
            Sex=str(rng.choice(["F", "M"])),  # type: ignore[arg-type]
            BP=str(rng.choice(["HIGH", "LOW", "NORMAL"])),  # type: ignore[arg-type]
            Cholesterol=str(rng.choice(["HIGH", "NORMAL"])),  # type: ignore[arg-type]
            Na_to_K=float(rng.uniform(1e-3, NA_TO_K_MAX)),
        )
        for _ in range(n)
    ]
