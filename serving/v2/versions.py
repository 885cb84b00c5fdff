"""Published versions other than the served one, loaded on first use and a few kept.

``/v2/models/<name>/versions/<version>/...`` may name any version the registry publishes whose
parity gate passed. The served version answers from the holder; another is loaded the first
time it is asked for (``DrugModel.load``: metadata checked against the contract and the ONNX
graph, model bytes against their sha256), in a thread so the event loop keeps answering, and
kept in a small least-recently-used cache (``DRUGCLF_MODEL_VERSIONS_KEPT``) so a client that
pins a version does not pay a load per request, while a scan over every version cannot fill
the worker's memory.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from typing import Final

import anyio.to_thread

from drugclf.artifact import ArtifactError, read_metadata
from drugclf.registry import VERSION_PATTERN, Registry
from serving.http.errors import VersionNotFoundError
from serving.http.validation import shown
from serving.inference.holder import ModelHolder
from serving.inference.model import DrugModel

logger = logging.getLogger(__name__)

EXAMPLE_VERSION: Final = "20261127-101500-3f9a2c"


class VersionCache:
    """The models of published versions this worker loaded on demand.

    Args:
        holder: the worker's holder (its model is the served version, never loaded twice).
        kept: how many other versions stay loaded.
    """

    def __init__(self, holder: ModelHolder, kept: int) -> None:
        self.holder = holder
        self.registry: Registry = holder.registry
        self.kept = kept
        self._models: OrderedDict[str, DrugModel] = OrderedDict()
        self._loading = asyncio.Lock()

    def servable(self) -> list[str]:
        """Versions a request may name: published, readable, parity passed (and the served one)."""
        versions = [
            info.version for info in self.registry.list_versions() if info.metadata.parity.passed
        ]
        served = self.holder.model
        if served is not None and served.version not in versions:
            versions.append(served.version)
        return sorted(versions)

    async def get(self, version: str) -> DrugModel:
        """The model of ``version``, loading it if this worker has not yet.

        Raises:
            VersionNotFoundError: no such published version, it did not pass parity, or its
                artifact cannot be loaded (logged).
        """
        served = self.holder.model
        if served is not None and served.version == version:
            return served
        model = self._models.get(version)
        if model is not None:
            self._models.move_to_end(version)
            return model
        async with self._loading:  # one load at a time: a burst for a new version loads it once
            model = self._models.get(version)
            if model is None:
                model = await self._load(version)
                self._models[version] = model
                while len(self._models) > self.kept:
                    evicted, _ = self._models.popitem(last=False)
                    logger.info("unloaded model %s (least recently used)", evicted)
        return model

    async def _load(self, version: str) -> DrugModel:
        if not VERSION_PATTERN.fullmatch(version) or version not in self.registry.versions():
            raise VersionNotFoundError(
                f"no published version {shown(version)} (see the versions in the model metadata)",
                field="version",
            )
        folder = self.registry.root / version
        try:
            if not read_metadata(folder).parity.passed:
                raise VersionNotFoundError(
                    f"version {version} did not pass its parity gate: it is never served",
                    field="version",
                )
            load = functools.partial(DrugModel.load, folder, threads=self.holder.threads)
            model = await anyio.to_thread.run_sync(load)
        except ArtifactError as exc:
            logger.error("cannot load model %s: %s", version, exc, extra={"model_version": version})
            raise VersionNotFoundError(
                f"version {version} is published but cannot be loaded", field="version"
            ) from None
        logger.info("loaded model %s on demand", version, extra={"model_version": version})
        return model
