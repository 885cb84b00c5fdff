"""The model class without HTTP: loading, the load-time checks, and predictions."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drugclf.artifact import CELL_TABLE_FILE, MODEL_FILE, ArtifactError, sha256_hex
from drugclf.cells import CellTable
from drugclf.contract import CLASSES, SAMPLE_PATIENT, Patient
from drugclf.registry import Registry
from serving.inference.model import DrugModel
from serving.settings import OrtThreads
from tests.support import point_current_at, random_patients

from .conftest import DATA, Trained

P = SAMPLE_PATIENT


def _dataset_patients() -> list[Patient]:
    rows = [line.split(",") for line in DATA.read_text().splitlines()[1:]]
    return [
        Patient(Age=int(a), Sex=s, BP=b, Cholesterol=c, Na_to_K=float(n))  # type: ignore[arg-type]
        for a, s, b, c, n, _ in rows
    ]


@pytest.fixture(scope="module")
def model(trained: Trained) -> DrugModel:
    return DrugModel.load(Registry(trained.artifacts_dir).resolve_current())


def test_load_reads_version_and_classes(model: DrugModel, trained: Trained) -> None:
    assert model.version == trained.version
    assert model.classes == CLASSES


def test_predict_returns_one_label_and_probability_row_per_patient(model: DrugModel) -> None:
    patients = [P, Patient(Age=23, Sex="F", BP="LOW", Cholesterol="HIGH", Na_to_K=7.3)]
    result = model.predict(patients)
    assert len(result.labels) == 2
    assert result.probabilities.shape == (2, len(CLASSES))
    assert np.allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    for label, row in zip(result.labels, result.probabilities, strict=True):
        assert label == CLASSES[int(np.argmax(row))]


def test_probabilities_never_exceed_one(model: DrugModel) -> None:
    # Unanimous forests sum their float32 votes to 1.0000001 before the cap.
    patients = _dataset_patients()
    batch = model.predict(patients).probabilities
    assert batch.max() <= 1.0
    assert (batch == 1.0).any(), "the dataset has patients every tree agrees on"
    assert all(model.predict_one(p).probabilities.max() <= 1.0 for p in patients)


def test_large_batches_run_in_slices_with_bit_identical_answers(trained: Trained) -> None:
    folder = Registry(trained.artifacts_dir).resolve_current()
    single = DrugModel.load(folder, threads=OrtThreads(cell_table=False))
    sliced = DrugModel.load(
        folder,
        threads=OrtThreads(per_call=1, large_batch=3, large_batch_rows=64, cell_table=False),
    )
    patients = _dataset_patients()
    for batch in (patients[:63], patients[:64], patients[:65], patients):
        expected, got = single.predict(batch), sliced.predict(batch)
        assert got.labels == expected.labels
        # Bit for bit, and the same as each patient alone: slicing never changes an answer.
        assert np.array_equal(got.probabilities, expected.probabilities)
    alone = np.concatenate([single.predict_one(p).probabilities for p in patients])
    assert np.array_equal(sliced.predict(patients).probabilities, alone)
    # More slices than patients: each slice gets one, none is an empty call.
    fine = DrugModel.load(
        folder, threads=OrtThreads(large_batch=8, large_batch_rows=1, cell_table=False)
    )
    session, sizes = fine.session, []

    class Counting:
        def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            sizes.append(len(feeds["Age"]))
            result: list[np.ndarray] = session.run(outputs, feeds)
            return result

    fine.session = Counting()
    assert np.array_equal(fine.predict(patients[:3]).probabilities, alone[:3])
    assert sorted(sizes) == [1, 1, 1]
    # The slices beyond the first ran on the batch threads.
    names = {thread.name for thread in threading.enumerate()}
    assert {"ort-batch_0", "ort-batch_1"} <= names


def test_predict_one_equals_batch_of_one(model: DrugModel) -> None:
    one = model.predict_one(P)
    batch = model.predict([P])
    assert one.labels == batch.labels
    assert np.array_equal(one.probabilities, batch.probabilities)


def test_batch_keeps_order(model: DrugModel) -> None:
    patients = [
        Patient(Age=age, Sex="F", BP=bp, Cholesterol="HIGH", Na_to_K=ratio)
        for age in (20, 50, 70)
        for bp in ("HIGH", "LOW", "NORMAL")
        for ratio in (6.0, 12.0, 30.0)
    ]
    batch = model.predict(patients)
    singles = [model.predict_one(p) for p in patients]
    assert batch.labels == [s.labels[0] for s in singles]
    assert np.allclose(batch.probabilities, np.vstack([s.probabilities for s in singles]))


def test_high_na_to_k_points_to_drug_y(model: DrugModel) -> None:
    assert model.predict_one(
        Patient(Age=40, Sex="F", BP="NORMAL", Cholesterol="HIGH", Na_to_K=35.0)
    ).labels == ["DrugY"]


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="cannot read"):
        DrugModel.load(tmp_path / "20261127-000000-abcdef")


def test_nothing_published_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no model published"):
        Registry(tmp_path).resolve_current()


def _replace_model(folder: Path, data: bytes, rewrite_metadata: Callable[..., None]) -> None:
    """Replace model.onnx and bind the metadata to it, so the checks after the hash are reached."""
    (folder / MODEL_FILE).write_bytes(data)
    rewrite_metadata(folder, lambda m: m.update(model_sha256=sha256_hex(data)))


def test_corrupt_onnx_is_refused(
    registry_copy: Registry, trained: Trained, rewrite_metadata: Callable[..., None]
) -> None:
    folder = registry_copy.root / trained.version
    _replace_model(folder, b"not a model", rewrite_metadata)
    with pytest.raises(ArtifactError, match="not a loadable ONNX model"):
        DrugModel.load(folder)


def test_model_file_of_another_version_is_refused(
    registry_copy: Registry, trained: Trained, clone_version: Callable[..., str]
) -> None:
    """A model.onnx swapped for another one (here: truncated) no longer matches its sha256."""
    other = clone_version(registry_copy, trained.version, "29990101-000000-dddddd")
    folder = registry_copy.root / other
    model = (folder / MODEL_FILE).read_bytes()
    (folder / MODEL_FILE).write_bytes(model[: len(model) // 2])
    with pytest.raises(ArtifactError, match="not the model its metadata describes"):
        DrugModel.load(folder)
    with pytest.raises(ArtifactError, match="not the model its metadata describes"):
        registry_copy.promote(other)
    assert registry_copy.current_version() == trained.version


def test_format_1_without_hash_loads_and_format_2_requires_it(
    registry_copy: Registry,
    trained: Trained,
    rewrite_metadata: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = registry_copy.root / trained.version
    rewrite_metadata(folder, lambda m: m.update(model_sha256=None))
    with pytest.raises(ArtifactError, match="no model_sha256"):
        DrugModel.load(folder)
    raw = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**raw, "format_version": 1}))
    with caplog.at_level("WARNING", logger="serving.inference.model"):
        assert DrugModel.load(folder).version == trained.version
    assert any("not bound to its metadata" in r.getMessage() for r in caplog.records)


def test_links_out_of_the_registry_are_not_followed(
    registry_copy: Registry, trained: Trained, tmp_path: Path
) -> None:
    outside = tmp_path / "outside" / "29990101-000000-eeeeee"
    shutil.copytree(registry_copy.root / trained.version, outside)
    rewrite = outside / "metadata.json"
    rewrite.write_text(rewrite.read_text().replace(trained.version, outside.name))
    (registry_copy.root / outside.name).symlink_to(outside, target_is_directory=True)
    assert outside.name not in registry_copy.versions()
    with pytest.raises(ArtifactError, match="symbolic link"):
        registry_copy.promote(outside.name)
    point_current_at(registry_copy, outside.name)
    with pytest.raises(ArtifactError, match="symbolic link"):
        registry_copy.resolve_current()
    # A version whose model file is a link is refused as well.
    folder = registry_copy.root / trained.version
    (folder / MODEL_FILE).unlink()
    (folder / MODEL_FILE).symlink_to(outside / MODEL_FILE)
    with pytest.raises(ArtifactError, match="symbolic link"):
        DrugModel.load(folder)


def test_corrupt_metadata_is_refused(registry_copy: Registry, trained: Trained) -> None:
    folder = registry_copy.root / trained.version
    (folder / "metadata.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid metadata"):
        DrugModel.load(folder)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(classes=["DrugA", "DrugB", "DrugC", "DrugX", "DrugZ"]), "classes"),
        (lambda m: m["inputs"].reverse(), "inputs"),
        (lambda m: m["inputs"][0].update(element_type="double"), "Age is double"),
        (lambda m: m["inputs"][4].update(name="NaK"), "inputs"),
        (lambda m: m.update(outputs=["label"]), "outputs lack"),
        (lambda m: m.update(version="20200101-000000-aaaaaa"), "metadata says version"),
    ],
    ids=["classes", "input-order", "input-type", "input-name", "outputs", "version"],
)
def test_metadata_that_does_not_match_the_contract_is_refused(
    registry_copy: Registry,
    trained: Trained,
    rewrite_metadata: Callable[..., None],
    edit: Callable[[dict[str, object]], None],
    message: str,
) -> None:
    folder = registry_copy.root / trained.version
    rewrite_metadata(folder, edit)
    with pytest.raises(ArtifactError, match=message):
        DrugModel.load(folder)


def test_graph_that_does_not_match_the_metadata_is_refused(
    registry_copy: Registry, trained: Trained, rewrite_metadata: Callable[..., None]
) -> None:
    """Metadata and contract agree, but the ONNX graph takes different inputs."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array([0, 1]))
    onx = to_onnx(fitted, initial_types=[("x", FloatTensorType([None, 1]))])
    folder = registry_copy.root / trained.version
    _replace_model(folder, onx.SerializeToString(), rewrite_metadata)
    with pytest.raises(ArtifactError, match="graph inputs"):
        DrugModel.load(folder)


def test_model_loads_from_a_version_copied_elsewhere(trained: Trained, tmp_path: Path) -> None:
    target = tmp_path / trained.version
    shutil.copytree(trained.artifacts_dir / trained.version, target)
    assert DrugModel.load(target).version == trained.version


def test_the_cell_table_answers_as_the_session_bit_for_bit(trained: Trained) -> None:
    folder = Registry(trained.artifacts_dir).resolve_current()
    looked_up = DrugModel.load(folder)
    session = DrugModel.load(folder, threads=OrtThreads(cell_table=False))
    assert looked_up.table is not None and session.table is None
    patients = _dataset_patients() + random_patients(3_000)
    expected, got = session.predict(patients), looked_up.predict(patients)
    assert got.labels == expected.labels
    assert np.array_equal(got.probabilities.view(np.uint32), expected.probabilities.view(np.uint32))
    for p in patients[:500]:
        one, reference = looked_up.predict_one(p), session.predict_one(p)
        assert one.labels == reference.labels
        assert np.array_equal(one.probabilities, reference.probabilities)
        assert one.probabilities.shape == (1, len(CLASSES))


def test_a_version_without_a_table_answers_from_its_session(
    registry_copy: Registry, trained: Trained, rewrite_metadata: Callable[..., None]
) -> None:
    """A version exported before cell tables (or above the cell cap) loads as before."""
    folder = registry_copy.root / trained.version
    (folder / CELL_TABLE_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"cannot read .*cells\.npz"):
        DrugModel.load(folder)
    rewrite_metadata(folder, lambda m: m.update(cell_table=None))
    model = DrugModel.load(folder)
    assert model.table is None
    assert model.predict_one(P).labels == model.predict([P]).labels


def test_a_table_of_another_model_is_refused_at_load(
    registry_copy: Registry, trained: Trained, rewrite_metadata: Callable[..., None]
) -> None:
    """Bound by its sha256 and still refused: its answers are not the session's."""
    folder = registry_copy.root / trained.version
    table = CellTable.from_bytes((folder / CELL_TABLE_FILE).read_bytes())
    probabilities = table.probabilities.copy()
    probabilities[0, 0] = np.nextafter(probabilities[0, 0], np.float32(2.0))
    other = CellTable(table.numeric, table.categories, table.label_indices, probabilities)
    data = other.to_bytes()
    (folder / CELL_TABLE_FILE).write_bytes(data)
    with pytest.raises(ArtifactError, match="not the cell table its metadata describes"):
        DrugModel.load(folder)

    def rebind(meta: dict[str, Any]) -> None:
        meta["cell_table"]["sha256"] = sha256_hex(data)

    rewrite_metadata(folder, rebind)
    with pytest.raises(ArtifactError, match=r"answers 1 of 192 checked cells otherwise"):
        DrugModel.load(folder)
    (folder / CELL_TABLE_FILE).write_bytes(b"garbage")
    rewrite_metadata(folder, lambda m: m["cell_table"].update(sha256=sha256_hex(b"garbage")))
    with pytest.raises(ArtifactError, match=r"cells\.npz: not a cell table"):
        DrugModel.load(folder)
