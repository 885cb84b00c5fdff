"""The traffic router of one worker: which version answers each request, and who listens.

It follows the registry's policy file (``drugclf.routing``): every ``interval`` seconds a
``stat`` of the file; when it changed, the new policy's versions are loaded (in a thread, from
this worker's cache of loaded versions when it has them) and only then is the policy swapped
in, with one reference assignment. A request reads that reference once, so it sees the old
policy or the new one, never half of each. A policy whose primary is not the version this
worker serves (``current`` moved and this worker has not reloaded yet, or the policy is stale)
is not applied: the served model answers alone until both agree.

With the policy's sticky header present, a request's version is a hash of the header's value
and the policy id (the same key, the same version, while the policy is unchanged); without it,
a random draw. Candidates take their weights' shares; the primary the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import anyio.to_thread

from drugclf import routing
from drugclf.artifact import ArtifactError
from drugclf.contract import Patient
from drugclf.registry import Registry
from drugclf.routing import PolicyError, RoutingPolicy
from serving.experiments.shadows import ShadowQueue
from serving.inference import background
from serving.inference.holder import ModelHolder
from serving.inference.model import DrugModel
from serving.inference.service import Choice, Headers

logger = logging.getLogger(__name__)

_SCALE: Final = float(1 << 64)
_SHADOW_PERSON: Final = b"shadow"


def draw(key: bytes, policy_key: bytes, person: bytes = b"") -> float:
    """A number in [0, 1) fixed by the key and the policy (uniform over keys)."""
    digest = hashlib.blake2b(key, digest_size=8, key=policy_key, person=person).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True, slots=True)
class ActivePolicy:
    """A policy with its versions loaded: what ``choose`` reads, swapped as a whole."""

    policy: RoutingPolicy
    policy_id: str
    policy_key: bytes
    header: bytes | None
    candidates: tuple[DrugModel, ...]
    edges: tuple[float, ...]
    """Cumulative candidate weights: a draw below ``edges[i]`` (and not below the one before)
    goes to candidate i; at or above the last, to the primary."""
    shadows: tuple[tuple[DrugModel, float], ...]

    def sticky_key(self, headers: Headers) -> bytes | None:
        """The value of the sticky header among ``headers`` (None: absent or no sticky key)."""
        name = self.header
        if name is None:
            return None
        for key, value in headers:
            if key == name:
                return value
        return None


class TrafficRouter:
    """Chooses a version per request from the registry's policy (``ModelChooser``).

    Args:
        registry: where the policy file and the versions are.
        holder: the worker's served model (the policy's primary must be it).
        shadows: the queue answered requests wait in for the shadow versions.
    """

    def __init__(self, registry: Registry, holder: ModelHolder, shadows: ShadowQueue) -> None:
        self.registry = registry
        self.holder = holder
        self.shadows = shadows
        self.active: ActivePolicy | None = None
        self.refused: str | None = None
        """Why the policy file is not followed (None: it is, or there is none)."""
        self._signature: tuple[int, int, int] | None = None
        self._loaded: dict[str, DrugModel] = {}
        self._random = random.Random()  # noqa: S311 - a traffic split, not a secret

    # The request path --------------------------------------------------------------------

    def choose(self, headers: Headers) -> Choice | None:
        """The version for one request, or None (no policy, or not applicable now)."""
        active = self.active
        if active is None:
            return None
        primary = self.holder.model
        if primary is None or primary.version != active.policy.primary:
            return None
        key = active.sticky_key(headers)
        if key is not None:
            u = draw(key, active.policy_key)
            s = draw(key, active.policy_key, _SHADOW_PERSON)
        else:
            u = self._random.random()
            s = self._random.random()
        model, role = primary, "primary"
        for candidate, edge in zip(active.candidates, active.edges, strict=True):
            if u < edge:
                model, role = candidate, "candidate"
                break
        listeners = tuple(shadow for shadow, fraction in active.shadows if s < fraction)
        if role == "candidate":
            # The primary listens to what a candidate answered: agreement on the same requests.
            listeners = (primary, *listeners)
        return Choice(model, role, listeners)  # type: ignore[arg-type] # role is a Role

    def after_answer(
        self,
        choice: Choice,
        patients: Patient | list[Patient],
        request_id: str | None,
    ) -> None:
        """Queue the answered request for the chosen shadows (counted if the queue is full)."""
        self.shadows.offer(choice.shadows, patients, request_id)

    # Following the policy file ---------------------------------------------------------

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(routing.policy_path(self.registry))
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def load_now(self) -> None:
        """Follow the policy file at once (startup: blocking)."""
        signature = self._stat()
        self._apply(signature, self._read_and_load(signature))

    async def refresh(self) -> bool:
        """Follow the policy file if it changed; True if the active policy changed."""
        signature = self._stat()
        if signature == self._signature:
            return False
        loaded = await anyio.to_thread.run_sync(self._read_and_load, signature)
        return self._apply(signature, loaded)

    def _read_and_load(
        self, signature: tuple[int, int, int] | None
    ) -> ActivePolicy | PolicyError | None:
        if signature is None:
            return None
        try:
            policy = routing.read(self.registry)
            if policy is None:
                return None
            return self._activate(policy)
        except PolicyError as exc:
            return exc
        except ArtifactError as exc:
            return PolicyError(str(exc))

    def _model(self, version: str) -> DrugModel:
        model = self._loaded.get(version)
        if model is None:
            served = self.holder.model
            if served is not None and served.version == version:
                return served
            model = DrugModel.load(self.registry.version_dir(version), threads=self.holder.threads)
        return model

    def _activate(self, policy: RoutingPolicy) -> ActivePolicy:
        candidates = tuple(self._model(c.version) for c in policy.candidates)
        shadows = tuple((self._model(s.version), s.fraction) for s in policy.shadow)
        header = policy.sticky_header
        return ActivePolicy(
            policy=policy,
            policy_id=policy.policy_id,
            policy_key=policy.policy_id.encode(),
            header=header.encode() if header else None,
            candidates=candidates,
            edges=tuple(itertools.accumulate(c.weight for c in policy.candidates)),
            shadows=shadows,
        )

    def _apply(
        self, signature: tuple[int, int, int] | None, loaded: ActivePolicy | PolicyError | None
    ) -> bool:
        self._signature = signature
        if isinstance(loaded, PolicyError):
            # Keep what was applied: a damaged or unloadable policy must not change answers.
            if self.refused != loaded.message:
                logger.error("traffic policy refused, keeping the previous one: %s", loaded)
            self.refused = loaded.message
            return False
        self.refused = None
        previous, self.active = self.active, loaded
        self._loaded = (
            {m.version: m for m in loaded.candidates} | {m.version: m for m, _ in loaded.shadows}
            if loaded is not None
            else {}
        )
        if (previous and previous.policy_id) != (loaded and loaded.policy_id):
            logger.info(
                "traffic policy %s",
                f"{loaded.policy_id}: {routing.encode(loaded.policy).decode()}"
                if loaded
                else "removed: one model answers",
                extra={"policy_id": loaded.policy_id if loaded else None},
            )
            return True
        return False

    @contextlib.asynccontextmanager
    async def running(self, interval: float) -> AsyncIterator[None]:
        """Follow the policy and run the shadow task for the lifespan (0: read it once)."""
        self.load_now()
        async with (
            self.shadows.running(),
            background.polling(interval, self.refresh, "traffic policy check"),
        ):
            yield
