"""Job targets for spawned test processes (``serving.lifecycle.jobs`` runs "module:function")."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial

import pytest

from drugclf.retrain import JobEvent, JobSpec, Validated


def sleeps(spec: JobSpec, emit: Callable[[JobEvent], None]) -> None:
    """Validates at once, then hangs (a stuck job)."""
    emit(Validated(data_sha256="0" * 64, data_rows=200))
    time.sleep(600)


def crashes(spec: JobSpec, emit: Callable[[JobEvent], None]) -> None:
    """Validates, then the process dies without a word."""
    emit(Validated(data_sha256="0" * 64, data_rows=200))
    os._exit(3)


def raises(spec: JobSpec, emit: Callable[[JobEvent], None]) -> None:
    """An unexpected exception inside training."""
    raise RuntimeError("secret internal detail")


def parity_fails(spec: JobSpec, emit: Callable[[JobEvent], None]) -> None:
    """The real job, with the parity gate made to find mismatches (tolerance below zero)."""
    from training import parity, workflow
    from training.job import run_job

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(workflow, "check_parity", partial(parity.check_parity, tolerance=-1.0))
        run_job(spec, emit)


def explanations_fail(spec: JobSpec, emit: Callable[[JobEvent], None]) -> None:
    """The real job, with the explanation gate made to fail (tolerance below zero)."""
    from training import explanations, workflow
    from training.job import run_job

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            workflow, "check_explainer", partial(explanations.check_explainer, tolerance=-1.0)
        )
        run_job(spec, emit)


def cell_table_fails(spec: JobSpec, emit: Callable[[JobEvent], None]) -> None:
    """The real job, with one probability of the cell table one float32 step off."""
    import numpy as np

    from drugclf.cells import CellTable
    from training import cell_table, workflow
    from training.job import run_job

    def tampered(grid: object, model_bytes: bytes) -> CellTable:
        table = cell_table.build_cell_table(grid, model_bytes)  # type: ignore[arg-type]
        probabilities = table.probabilities.copy()
        probabilities[0, 0] = np.nextafter(probabilities[0, 0], np.float32(2.0))
        return CellTable(table.numeric, table.categories, table.label_indices, probabilities)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(workflow, "build_cell_table", tampered)
        run_job(spec, emit)
