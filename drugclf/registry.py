"""The model registry: versioned artifact folders and the ``current`` pointer.

Layout of the artifacts directory::

    artifacts/
      20261127-101500-3f9a2c/     one folder per version, never changed once published
        model.onnx
        metadata.json
        confusion_matrix.png
      current -> 20261127-101500-3f9a2c
      history.json                versions promoted, oldest first (for rollback)
      routing.json                the traffic policy, if any (``drugclf.routing``)

``current`` is a relative symlink replaced atomically (new link, then ``rename``), so a reader
sees the old or the new version, never a half-written one. The CLI and the HTTP endpoints use
this module alone to change what is served.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Final

import msgspec

from drugclf.artifact import (
    METADATA_FILE,
    MODEL_FILE,
    ArtifactError,
    ArtifactMetadata,
    read_cell_table,
    read_explainer,
    read_metadata,
    read_model,
)

logger = logging.getLogger(__name__)

CURRENT: Final = "current"
HISTORY_FILE: Final = "history.json"
POLICY_FILE: Final = "routing.json"
"""The traffic policy (``drugclf.routing``); its primary is always the ``current`` version."""
VERSION_PATTERN: Final = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6,}$")


def shown_name(name: str, limit: int = 40) -> str:
    """A name from outside (a URL, a command line) for a message: quoted, cut when long."""
    return repr(name if len(name) <= limit else name[: limit - 3] + "...")


def check_version_files(folder: Path) -> None:
    """Refuse what serving would refuse: the files a version's metadata binds, as recorded.

    Raises:
        ArtifactError: the metadata, the model or the explainer's files are missing or damaged.
    """
    meta = read_metadata(folder)
    read_model(folder, meta)
    read_explainer(folder, meta)
    read_cell_table(folder, meta)


class RegistryError(Exception):
    """A registry operation cannot be carried out (unknown version, nothing to roll back to)."""


class VersionInfo(msgspec.Struct, frozen=True):
    """One published version as listed by the registry."""

    version: str
    current: bool
    metadata: ArtifactMetadata


class Registry:
    """Versions under one artifacts directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def current_link(self) -> Path:
        """The ``current`` symlink (it may not exist yet)."""
        return self.root / CURRENT

    def version_dir(self, version: str) -> Path:
        """The folder of a version; rejects names that are not version names (no paths)."""
        if not VERSION_PATTERN.fullmatch(version):
            raise RegistryError(
                f"{shown_name(version)} is not a version name "
                "(expected e.g. 20261127-101500-3f9a2c)"
            )
        return self.root / version

    def current_version(self) -> str | None:
        """The version ``current`` points at, or None when nothing is published."""
        try:
            target = os.readlink(self.current_link)
        except (FileNotFoundError, OSError):
            return None
        return Path(target).name

    def resolve_current(self) -> Path:
        """The folder ``current`` points at, resolved once so later reads see one version.

        Raises:
            ArtifactError: no current version, or it points at a missing folder.
        """
        version = self.current_version()
        if version is None:
            raise ArtifactError(f"no model published: {self.current_link} does not exist")
        folder = self.contained(self.root / version)
        if not (folder / MODEL_FILE).is_file():
            raise ArtifactError(
                f"{self.current_link} points at {folder}, which has no {MODEL_FILE}"
            )
        return folder

    def contained(self, folder: Path) -> Path:
        """``folder`` if it is a real folder inside the registry, never a link out of it.

        Raises:
            ArtifactError: the version folder is a symbolic link.
        """
        if folder.is_symlink():
            raise ArtifactError(
                f"{folder} is a symbolic link; a version folder must live in the registry"
            )
        return folder

    def versions(self) -> list[str]:
        """Published version names, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir()
            and not p.is_symlink()
            and VERSION_PATTERN.fullmatch(p.name)
            and (p / METADATA_FILE).is_file()
        )

    def list_versions(self) -> list[VersionInfo]:
        """All readable versions with their metadata; unreadable ones are logged and skipped."""
        current = self.current_version()
        infos = []
        for version in self.versions():
            try:
                meta = read_metadata(self.root / version)
            except ArtifactError as exc:
                logger.warning("skipping unreadable version %s: %s", version, exc)
                continue
            infos.append(VersionInfo(version=version, current=version == current, metadata=meta))
        return infos

    def history(self) -> list[str]:
        """Versions promoted so far, oldest first."""
        try:
            return msgspec.json.decode((self.root / HISTORY_FILE).read_bytes(), type=list[str])
        except FileNotFoundError:
            return []
        except msgspec.DecodeError as exc:
            raise RegistryError(f"{self.root / HISTORY_FILE} is corrupt: {exc}") from exc

    def publish(self, staging: Path, version: str) -> Path:
        """Move a fully written staging folder into place as ``version`` (not yet current)."""
        target = self.version_dir(version)
        if target.exists():
            raise RegistryError(f"version {version} already exists")
        self.root.mkdir(parents=True, exist_ok=True)
        os.rename(staging, target)
        return target

    def promote(self, version: str) -> None:
        """Point ``current`` at ``version`` atomically and record it in the history."""
        folder = self.contained(self.version_dir(version))
        check_version_files(folder)
        self._point_current_at(version)
        history = self.history()
        if not history or history[-1] != version:
            history.append(version)
            self._write_history(history)
        logger.info("promoted %s", version, extra={"model_version": version})

    def rollback(self) -> str:
        """Serve the version that was current before this one; returns it."""
        history = self.history()
        current = self.current_version()
        while history and history[-1] == current:
            history.pop()
        available = set(self.versions())
        while history and history[-1] not in available:
            history.pop()
        if not history:
            raise RegistryError("nothing to roll back to: no earlier promoted version exists")
        previous = history[-1]
        folder = self.contained(self.root / previous)
        check_version_files(folder)  # never roll back onto a damaged version
        self._point_current_at(previous)
        self._write_history(history)
        logger.info("rolled back to %s", previous, extra={"model_version": previous})
        return previous

    def discard(self, staging: Path) -> None:
        """Remove a staging folder that will not be published."""
        shutil.rmtree(staging, ignore_errors=True)

    def staging_dir(self) -> Path:
        """A fresh folder inside the registry (same filesystem, so publish is a rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        counter = 0
        while True:
            candidate = self.root / f".staging-{os.getpid()}-{counter}"
            try:
                candidate.mkdir()
            except FileExistsError:
                counter += 1
                continue
            return candidate

    def _point_current_at(self, version: str) -> None:
        tmp = self.root / f".{CURRENT}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(version, tmp)
        os.replace(tmp, self.current_link)
        self._end_policy(version)

    def _end_policy(self, version: str) -> None:
        """Remove a traffic policy whose primary is no longer ``current`` (promote, rollback).

        Moving ``current`` ends the experiment: its candidates were measured against the old
        primary. Workers never apply a policy whose primary they do not serve, so the moment
        between the two steps is safe.
        """
        path = self.root / POLICY_FILE
        try:
            policy = msgspec.json.decode(path.read_bytes())
        except FileNotFoundError:
            return
        except msgspec.DecodeError:
            policy = None
        primary = policy.get("primary") if isinstance(policy, dict) else None
        if primary == version:
            return
        path.unlink(missing_ok=True)
        logger.warning(
            "the traffic policy of primary %s ended: %s is current now, and serves alone "
            "(set a new policy to test candidates against it)",
            primary,
            version,
            extra={"model_version": version},
        )

    def _write_history(self, history: list[str]) -> None:
        tmp = self.root / f".{HISTORY_FILE}.{os.getpid()}.tmp"
        tmp.write_bytes(msgspec.json.encode(history))
        os.replace(tmp, self.root / HISTORY_FILE)
