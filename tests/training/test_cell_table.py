"""The cell table at export: built from model.onnx, gated bit for bit, bound to the metadata."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from drugclf.artifact import (
    CELL_TABLE_FILE,
    ArtifactError,
    BinningStrategy,
    Params,
    read_cell_table,
    read_metadata,
)
from drugclf.cells import CellTable
from drugclf.contract import CLASSES
from drugclf.registry import Registry
from training import cell_table as cell_table_module
from training.cell_table import CellTableGateError, build_cell_table, check_cell_table
from training.cli import EXIT_PARITY, main
from training.onnx_export import to_onnx
from training.parity import parity_groups
from training.pipeline import inference_pipeline
from training.runs import RunStore
from training.shapley import cell_grid
from training.workflow import export_run, train

from .conftest import Exported


def test_export_ships_a_gated_table_bound_to_the_metadata(exported: Exported) -> None:
    meta = exported.result.metadata
    info = meta.cell_table
    assert info is not None and meta.explanations is not None
    assert info.cells == meta.explanations.cells
    assert info.cells_per_input == meta.explanations.cells_per_input
    gate = info.gate
    assert gate.passed and gate.mismatches == 0 and gate.single_mismatches == 0
    assert gate.groups["cells"] == info.cells and gate.cases == sum(gate.groups.values())
    # Every cell and every edge case was also run one patient per call.
    assert gate.single_cases == gate.groups["cells"] + gate.groups["edges"]
    data = read_cell_table(exported.result.path, meta)
    assert data is not None
    assert CellTable.from_bytes(data).cells == info.cells


@pytest.mark.parametrize("strategy", ["fixed", "none"])
def test_every_binning_strategy_gets_a_bit_exact_table(
    strategy: BinningStrategy, data_path: Path, tmp_path: Path
) -> None:
    run = train(data_path, Params(n_estimators=10, binning=strategy), RunStore(tmp_path))
    pipeline = inference_pipeline(run.pipeline)
    model = to_onnx(pipeline)
    table = build_cell_table(cell_grid(pipeline, model), model.SerializeToString())
    report = check_cell_table(
        table, model.SerializeToString(), parity_groups(pipeline, run.dataset.features, 2_000)
    )
    assert report.passed, report.describe()
    assert report.gate.cases == sum(report.gate.groups.values())
    if strategy == "none":  # float32 thresholds: the comparisons happen after a cast
        assert table.numeric["Na_to_K"].float32 and table.cells > 1_000


def _tampered(table: CellTable, cell: int) -> CellTable:
    """The table with one probability of one cell one float32 step off."""
    probabilities = table.probabilities.copy()
    probabilities[cell, 0] = np.nextafter(probabilities[cell, 0], np.float32(2.0))
    return CellTable(table.numeric, table.categories, table.label_indices, probabilities)


def test_the_gate_refuses_a_table_one_bit_off(exported: Exported) -> None:
    pipeline = inference_pipeline(exported.run.pipeline)
    model = to_onnx(pipeline)
    model_bytes = model.SerializeToString()
    table = build_cell_table(cell_grid(pipeline, model), model_bytes)
    groups = parity_groups(pipeline, exported.run.dataset.features, 500)
    assert check_cell_table(table, model_bytes, groups).passed
    report = check_cell_table(_tampered(table, 5), model_bytes, groups)
    assert not report.passed
    assert report.gate.mismatches >= 1 and report.gate.single_mismatches >= 1
    assert "first failures" in report.describe()
    # A wrong label in one cell is refused too.
    labels = table.label_indices.copy()
    labels[7] = (labels[7] + 1) % len(CLASSES)
    relabelled = CellTable(table.numeric, table.categories, labels, table.probabilities)
    assert check_cell_table(relabelled, model_bytes, groups).gate.single_mismatches >= 1


def test_a_refused_table_publishes_nothing_and_the_cli_says_why(
    exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cell_table_module.build_cell_table
    monkeypatch.setattr(
        "training.workflow.build_cell_table", lambda grid, data: _tampered(real(grid, data), 0)
    )
    registry = Registry(tmp_path / "artifacts")
    with pytest.raises(CellTableGateError, match=r"cell table: [1-9]"):
        export_run(exported.run, exported.store, registry, random_cases=100, promote=False)
    assert registry.versions() == []
    code = main(
        [
            "export",
            "--runs-dir",
            str(exported.store.root),
            "--artifacts-dir",
            str(tmp_path / "cli-artifacts"),
            "--parity-cases",
            "100",
        ]
    )
    assert code == EXIT_PARITY


@pytest.mark.parametrize("damage", ["missing", "replaced"])
def test_a_damaged_table_file_is_refused(exported: Exported, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / exported.result.version
    shutil.copytree(exported.result.path, folder)
    if damage == "missing":
        (folder / CELL_TABLE_FILE).unlink()
    else:
        (folder / CELL_TABLE_FILE).write_bytes(b"PK not a table")
    with pytest.raises(ArtifactError, match=r"cell table|cells\.npz"):
        read_cell_table(folder, read_metadata(folder))
