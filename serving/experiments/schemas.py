"""Answers of the ``/routing`` routes."""

from __future__ import annotations

from typing import Literal

import msgspec

from drugclf.routing import RoutingPolicy


class RoutingReply(msgspec.Struct, frozen=True):
    """The registry's traffic policy, and whether the worker that answered follows it."""

    policy: RoutingPolicy | None
    """None: no policy, the served version answers everything."""
    policy_id: str | None
    """A hash of the policy's content: sticky keys keep their version while it is unchanged."""
    served_version: str | None
    """The version ``current`` names (the primary of any policy)."""
    applied: bool
    """This worker answers by the policy now (every worker does within the reload interval)."""
    refused: str | None = None
    """Why this worker does not follow the policy file (None: it does, or there is none)."""
    removed: RoutingPolicy | None = None
    """``DELETE``: the policy that was removed."""
    status: Literal["success"] = "success"
