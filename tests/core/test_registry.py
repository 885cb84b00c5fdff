"""The registry: publish, atomic current pointer, promote, rollback, refusal of bad names."""

from __future__ import annotations

from pathlib import Path

import pytest

from drugclf.artifact import BACKGROUND_FILE, EXPLAINER_FILE, ArtifactError, read_metadata
from drugclf.registry import Registry, RegistryError


def _copy_version(source: Path, registry: Registry, version: str) -> None:
    staging = registry.staging_dir()
    for path in source.iterdir():
        (staging / path.name).write_bytes(path.read_bytes())
    registry.publish(staging, version)


@pytest.fixture
def source(tmp_path_factory: pytest.TempPathFactory, data_path: Path) -> Path:
    from drugclf.artifact import Params
    from training.runs import RunStore
    from training.workflow import export_run, train

    root = tmp_path_factory.mktemp("src")
    registry = Registry(root / "a")
    run = train(data_path, Params(n_estimators=5), RunStore(root / "r"))
    return export_run(run, RunStore(root / "r"), registry, random_cases=100).path


def test_promote_and_rollback(tmp_path: Path, source: Path) -> None:
    registry = Registry(tmp_path)
    assert registry.current_version() is None
    with pytest.raises(ArtifactError, match="no model published"):
        registry.resolve_current()
    versions = ["20260101-000000-aaaaaa", "20260102-000000-bbbbbb", "20260103-000000-cccccc"]
    for version in versions:
        _copy_version(source, registry, version)
    assert registry.versions() == versions
    for version in versions:
        registry.promote(version)
    assert registry.current_version() == versions[2]
    assert registry.resolve_current() == tmp_path / versions[2]
    assert registry.rollback() == versions[1]
    assert registry.rollback() == versions[0]
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    listed = registry.list_versions()
    assert [v.current for v in listed] == [True, False, False]
    assert (tmp_path / "current").is_symlink()
    assert not list(tmp_path.glob(".current*"))


def test_refuses_bad_names_and_missing_versions(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    for bad in ("../x", "current", "a/b", ""):
        with pytest.raises(RegistryError, match="not a version name"):
            registry.promote(bad)
    with pytest.raises(ArtifactError):
        registry.promote("20260101-000000-aaaaaa")


def test_corrupt_metadata_is_refused_and_skipped_in_listings(tmp_path: Path, source: Path) -> None:
    registry = Registry(tmp_path)
    _copy_version(source, registry, "20260101-000000-aaaaaa")
    (tmp_path / "20260101-000000-aaaaaa" / "metadata.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid metadata"):
        read_metadata(tmp_path / "20260101-000000-aaaaaa")
    with pytest.raises(ArtifactError):
        registry.promote("20260101-000000-aaaaaa")
    assert registry.list_versions() == []


def test_publishing_twice_is_refused(tmp_path: Path, source: Path) -> None:
    registry = Registry(tmp_path)
    _copy_version(source, registry, "20260101-000000-aaaaaa")
    with pytest.raises(RegistryError, match="already exists"):
        _copy_version(source, registry, "20260101-000000-aaaaaa")


@pytest.mark.parametrize("damaged", [EXPLAINER_FILE, BACKGROUND_FILE])
def test_a_version_with_damaged_explanations_is_not_promoted(
    tmp_path: Path, source: Path, damaged: str
) -> None:
    registry = Registry(tmp_path)
    good, bad = "20260101-000000-aaaaaa", "20260102-000000-bbbbbb"
    _copy_version(source, registry, good)
    _copy_version(source, registry, bad)
    (tmp_path / bad / damaged).write_bytes(b"changed")
    with pytest.raises(ArtifactError, match="replaced or damaged"):
        registry.promote(bad)
    registry.promote(good)
    assert registry.current_version() == good
