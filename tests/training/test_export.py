"""Export and the parity gate: artifacts are complete, and a broken ONNX model is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from sklearn.pipeline import Pipeline

from drugclf.artifact import (
    BACKGROUND_FILE,
    CELL_TABLE_FILE,
    CONFUSION_MATRIX_FILE,
    EXPLAINER_FILE,
    MODEL_FILE,
    BinningStrategy,
    read_metadata,
)
from drugclf.contract import CLASSES, FEATURE_NAMES
from drugclf.registry import Registry
from training.onnx_export import to_onnx
from training.parity import check_parity, edge_cases, parity_groups, random_patients
from training.pipeline import inference_pipeline
from training.runs import RunStore
from training.workflow import ParityError, export_run

from .conftest import Exported


def test_export_publishes_a_complete_self_describing_version(exported: Exported) -> None:
    folder = exported.result.path
    assert exported.registry.current_version() == exported.result.version
    assert {p.name for p in folder.iterdir()} == {
        MODEL_FILE,
        "metadata.json",
        CONFUSION_MATRIX_FILE,
        EXPLAINER_FILE,
        BACKGROUND_FILE,
        CELL_TABLE_FILE,
    }
    meta = read_metadata(folder)
    assert meta.classes == list(CLASSES)
    assert [i.name for i in meta.inputs] == list(FEATURE_NAMES)
    assert meta.parity.passed and meta.parity.cases == sum(meta.parity.groups.values())
    assert meta.parity.groups["dataset"] == 200 and meta.parity.groups["random"] == 5_000
    assert meta.metrics.cv_folds == 5 and 0.9 < meta.metrics.cv_accuracy_mean <= 1.0
    assert meta.opset == {"": 17, "ai.onnx.ml": 3}
    assert {d.name for d in meta.training_distribution} == set(FEATURE_NAMES)
    for dist in meta.training_distribution:
        assert abs(sum(dist.proportions) - 1.0) < 1e-9
    assert meta.library_versions["scikit-learn"]
    session = ort.InferenceSession(str(folder / MODEL_FILE), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("Age", "tensor(int64)"),
        ("Sex", "tensor(string)"),
        ("BP", "tensor(string)"),
        ("Cholesterol", "tensor(string)"),
        ("Na_to_K", "tensor(double)"),
    ]
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    assert json.loads((folder / "metadata.json").read_text())["version"] == exported.result.version


def test_no_scikit_learn_pickle_in_the_served_artifact(exported: Exported) -> None:
    assert not list(exported.result.path.glob("*.pkl"))
    assert (exported.store.root / exported.run.record.run_id / "pipeline.pkl").is_file()


@pytest.mark.parametrize("strategy", ["fixed", "learned", "none"])
def test_parity_holds_for_every_strategy_including_edges(
    exported: Exported, strategy: BinningStrategy
) -> None:
    from drugclf.artifact import Params
    from training.pipeline import build_pipeline

    features = exported.run.dataset.features
    labels = exported.run.dataset.labels
    pipeline = inference_pipeline(
        build_pipeline(Params(n_estimators=25, binning=strategy)).fit(features, labels)
    )
    report = check_parity(
        pipeline, to_onnx(pipeline).SerializeToString(), parity_groups(pipeline, features, 20_000)
    )
    assert report.passed, report.describe()
    assert report.summary.groups["edges"] > 100


def test_edge_cases_cover_every_combination_of_bins_and_categories(exported: Exported) -> None:
    pipeline = inference_pipeline(exported.run.pipeline)
    cases = edge_cases(pipeline)
    transformed = pipeline.named_steps["features"].transform(cases)
    distinct_rows = {tuple(row) for row in transformed}
    edges = exported.result.metadata.bin_edges
    expected = (len(edges["Age"]) + 1) * (len(edges["Na_to_K"]) + 1) * 2 * 3 * 2
    assert len(distinct_rows) == expected
    for edge in edges["Na_to_K"]:
        assert edge in set(cases["Na_to_K"])
        assert np.nextafter(edge, np.inf) in set(cases["Na_to_K"])


def test_broken_onnx_is_rejected_by_the_gate(exported: Exported) -> None:
    pipeline = inference_pipeline(exported.run.pipeline)
    model = to_onnx(pipeline)
    # Move every bin edge after export, as a hand-edited or stale graph would.
    for init in model.graph.initializer:
        array = onnx.numpy_helper.to_array(init)
        if array.dtype == np.float64 and array.ndim == 2 and np.isinf(array).any():
            init.CopyFrom(onnx.numpy_helper.from_array(array + 2.0, init.name))
    report = check_parity(
        pipeline,
        model.SerializeToString(),
        {"dataset": exported.run.dataset.features, "random": random_patients(2000)},
    )
    assert not report.passed
    assert report.summary.mismatches > 0
    assert "first mismatches" in report.describe()
    assert len(report.first_mismatches) > 0


def test_failed_parity_publishes_nothing(
    exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(tmp_path / "artifacts")
    store = RunStore(tmp_path / "runs")
    import training.workflow as workflow

    def broken(pipeline: Pipeline) -> onnx.ModelProto:
        model = to_onnx(pipeline)
        for init in model.graph.initializer:
            array = onnx.numpy_helper.to_array(init)
            if array.dtype == np.float64 and array.ndim == 2:
                init.CopyFrom(onnx.numpy_helper.from_array(array * 1.5, init.name))
        return model

    monkeypatch.setattr(workflow, "to_onnx", broken)
    with pytest.raises(ParityError) as caught:
        export_run(exported.run, store, registry, random_cases=2000)
    assert "mismatches over" in str(caught.value)
    assert registry.versions() == []
    assert registry.current_version() is None
    assert not list((tmp_path / "artifacts").glob(".staging*"))


def test_dropping_zero_class_weights_changes_no_output(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.onnx_export as onnx_export

    pipeline = inference_pipeline(exported.run.pipeline)
    pruned = to_onnx(pipeline)
    monkeypatch.setattr(onnx_export, "drop_zero_class_weights", lambda model: 0)
    full = to_onnx(pipeline)

    def class_weights(model: onnx.ModelProto) -> list[float]:
        (forest,) = [n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier"]
        return list(next(a for a in forest.attribute if a.name == "class_weights").floats)

    assert 0.0 in class_weights(full)
    assert 0.0 not in class_weights(pruned)
    assert len(class_weights(pruned)) < len(class_weights(full)) / 2

    patients = random_patients(5000)
    feeds = {
        name: patients[name]
        .to_numpy()
        .reshape(-1, 1)
        .astype({"Age": np.int64, "Na_to_K": np.float64}.get(name, object))
        for name in FEATURE_NAMES
    }
    outputs = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, feeds
        )
        for m in (full, pruned)
    ]
    assert (outputs[0][0] == outputs[1][0]).all()
    assert np.array_equal(outputs[0][1], outputs[1][1])  # bit for bit
