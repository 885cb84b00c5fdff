"""The traffic policy without HTTP: read it, replace it after checking it, remove it.

``Experiments`` is built once per app. ``put`` checks the policy as the CLI does
(``drugclf.routing.check``), then loads every version it names as serving would (a model that
does not load is refused here, not in every worker), writes it atomically and applies it in
this worker at once; the others follow within the reload interval.
"""

from __future__ import annotations

import logging
from functools import partial

import anyio.to_thread

from drugclf import routing
from drugclf.artifact import ArtifactError
from drugclf.registry import Registry
from drugclf.routing import PolicyError, RoutingPolicy
from serving.experiments.router import TrafficRouter
from serving.experiments.schemas import RoutingReply
from serving.http.errors import InvalidInputError, MalformedBodyError
from serving.inference.model import DrugModel

logger = logging.getLogger(__name__)


def invalid_policy(exc: PolicyError) -> InvalidInputError | MalformedBodyError:
    """A refused policy as the house's 422 (``field`` names the part at fault), or 400."""
    if exc.malformed:
        return MalformedBodyError(exc.message, expected="a JSON policy object")
    return InvalidInputError(exc.message, field=exc.field, expected=_EXPECTED.get(exc.field or ""))


_EXPECTED = {
    "primary": "the served version (current)",
    "candidates": "at most 1 in total, each weight from 0 to 1",
    "sticky_key": "header:<Header-Name>",
}


class Experiments:
    """The registry's traffic policy and this worker's router."""

    def __init__(self, registry: Registry, router: TrafficRouter) -> None:
        self.registry = registry
        self.router = router

    def reply(self, removed: RoutingPolicy | None = None) -> RoutingReply:
        """The policy as stored, and whether this worker follows it."""
        refused = self.router.refused
        try:
            policy = routing.read(self.registry)
        except PolicyError as exc:
            policy, refused = None, exc.message
        active = self.router.active
        served = self.router.holder.model
        applied = (
            policy is not None
            and active is not None
            and active.policy_id == policy.policy_id
            and served is not None
            and served.version == policy.primary
        )
        return RoutingReply(
            policy=policy,
            policy_id=policy.policy_id if policy is not None else None,
            served_version=self.registry.current_version(),
            applied=applied,
            refused=refused,
            removed=removed,
        )

    async def put(self, body: bytes) -> RoutingReply:
        """Check, load, write and apply a policy document.

        Raises:
            MalformedBodyError: not JSON.
            InvalidInputError: not a policy, or one serving cannot follow (``field`` says which).
        """
        try:
            policy = routing.decode(body)
            routing.check(policy, self.registry)
        except PolicyError as exc:
            raise invalid_policy(exc) from None
        fields = [f"candidates[{i}].version" for i in range(len(policy.candidates))]
        fields += [f"shadow[{i}].version" for i in range(len(policy.shadow))]
        extra = [c.version for c in policy.candidates] + [s.version for s in policy.shadow]
        for field, version in zip(fields, extra, strict=True):
            folder = self.registry.version_dir(version)
            try:
                # A session takes milliseconds to seconds to build: keep the event loop free.
                await anyio.to_thread.run_sync(partial(DrugModel.load, folder))
            except ArtifactError as exc:
                message = str(exc).replace(str(self.registry.root) + "/", "")
                raise InvalidInputError(
                    f"{field}: version {version} cannot be served: {message}", field=field
                ) from None
        routing.write(self.registry, policy)
        logger.info("traffic policy written: %s", routing.encode(policy).decode())
        await self.router.refresh()
        return self.reply()

    async def delete(self) -> RoutingReply:
        """Remove the policy: the served version answers everything again."""
        removed = routing.clear(self.registry)
        await self.router.refresh()
        return self.reply(removed)
