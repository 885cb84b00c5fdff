"""The model holder: which model answers now, and hot reload when ``artifacts/current`` moves.

Every worker process owns one holder. A background task polls the registry's ``current`` link
(one ``readlink`` per interval); a new version is loaded and checked in a thread, exactly as at
startup, and only then swapped in with one reference assignment. In-flight requests keep the
model object they started with, so nothing fails or is dropped. A bad artifact is refused with
one logged error and the old model keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread

from drugclf.artifact import ArtifactError
from drugclf.registry import Registry
from serving.inference import background
from serving.inference.model import DrugModel
from serving.settings import OrtThreads

logger = logging.getLogger(__name__)


class ModelHolder:
    """Holds the current ``DrugModel`` of this process and replaces it when told to."""

    def __init__(
        self,
        registry: Registry,
        *,
        threads: OrtThreads | None = None,
        on_change: Callable[[DrugModel], None] | None = None,
        on_refuse: Callable[[str | None], None] | None = None,
    ) -> None:
        self.registry = registry
        self.threads = threads
        self.model: DrugModel | None = None
        self._on_change = on_change
        self._on_refuse = on_refuse
        self.refused: str | None = None
        """The version ``current`` names that this worker refused to load (None when serving it)."""

    def load_current(self) -> DrugModel:
        """Load what ``current`` points at now and serve it (startup path).

        Raises:
            ArtifactError: nothing is published, or the artifact is missing, corrupt or
                does not match the contract.
        """
        model = self._load(self.registry.resolve_current())
        self._swap(model)
        return model

    def _load(self, folder: Path) -> DrugModel:
        return DrugModel.load(folder, threads=self.threads)

    @property
    def current_version(self) -> str | None:
        """The version the registry's ``current`` names: the served one, or the refused one."""
        if self.refused is not None:
            return self.refused
        return self.model.version if self.model is not None else None

    def _swap(self, model: DrugModel) -> None:
        self.model = model
        if self.refused is not None:
            self._refuse(None)
        if self._on_change is not None:
            self._on_change(model)

    def _refuse(self, version: str | None) -> None:
        self.refused = version
        if self._on_refuse is not None:
            self._on_refuse(version)

    async def refresh(self) -> bool:
        """Load the version ``current`` points at if it is new and valid; True if swapped."""
        version = self.registry.current_version()
        loaded = self.model.version if self.model is not None else None
        if version is None or version in (loaded, self.refused):
            if version == loaded and self.refused is not None:
                self._refuse(None)  # current was moved back to what this worker serves
            return False
        try:
            folder = self.registry.resolve_current()
            # Building an ONNX session takes milliseconds to seconds: keep the event loop free.
            model = await anyio.to_thread.run_sync(self._load, folder)
        except ArtifactError as exc:
            self._refuse(version)
            logger.error(
                "refused new model %s, still serving %s: %s",
                version,
                loaded,
                exc,
                extra={"model_version": loaded, "refused_version": version},
            )
            return False
        self._swap(model)
        logger.info(
            "now serving model %s (was %s)",
            model.version,
            loaded,
            extra={"model_version": model.version, "previous_version": loaded},
        )
        return True

    def watching(self, interval: float) -> contextlib.AbstractAsyncContextManager[None]:
        """Poll ``current`` every ``interval`` seconds for the duration of the block (0: never)."""
        return background.polling(interval, self.refresh, "model reload check")
