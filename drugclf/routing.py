"""The traffic policy: which versions answer ``/predict`` beside the served one, and who listens.

The policy is one JSON file in the registry, beside ``current``::

    artifacts/routing.json
      {"primary": "<version>", "candidates": [{"version": "<v>", "weight": 0.1}],
       "shadow": [{"version": "<v>", "fraction": 1.0}], "sticky_key": "header:X-Subject-Id"}

It is written like ``current``: a temporary file, then ``rename``, so a reader sees the old
policy or the new one, never half of one. No file means one model answers everything. The
policy's id is a hash of its content: sticky assignments (a hash of the key and the id) hold
while the policy is unchanged and are drawn again when it changes. The CLI and the server
validate and write it here alone.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Annotated, Final

import msgspec

from drugclf.artifact import ArtifactError, read_metadata
from drugclf.registry import POLICY_FILE, Registry, RegistryError, shown_name

__all__ = ["POLICY_FILE"]
MAX_EXTRA_VERSIONS: Final = 4
"""Candidates and shadows together: each is one more onnxruntime session in every worker."""
STICKY_PATTERN: Final = r"^header:[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"
_STICKY: Final = re.compile(STICKY_PATTERN)
_AT: Final = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")

Share = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class Candidate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A version that answers a share of the requests in place of the primary."""

    version: str
    weight: Share
    """The share of requests it answers, from 0 to 1 (the candidates' sum is at most 1)."""


class Shadow(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A version that also predicts a share of the requests after they were answered."""

    version: str
    fraction: Share = 1.0
    """The share of requests it sees, from 0 to 1; its answers are logged, never returned."""


class RoutingPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who answers: the primary, candidates by weight, and shadows that only listen."""

    primary: str
    """The version that answers what no candidate takes: the served (``current``) version."""
    candidates: list[Candidate] = msgspec.field(default_factory=list)
    shadow: list[Shadow] = msgspec.field(default_factory=list)
    sticky_key: str | None = None
    """``header:<Name>``: requests with the same value of that header get the same version
    while the policy is unchanged; None (or a request without it): drawn at random."""

    @property
    def policy_id(self) -> str:
        """A hash of the policy's content (the same policy written twice has the same id)."""
        return hashlib.sha256(encode(self)).hexdigest()[:16]

    @property
    def sticky_header(self) -> str | None:
        """The header name of ``sticky_key``, lower case (None: no sticky key)."""
        return self.sticky_key.split(":", 1)[1].lower() if self.sticky_key else None

    def versions(self) -> list[str]:
        """Every version the policy names: the primary, then candidates, then shadows."""
        named = [self.primary, *(c.version for c in self.candidates)]
        return named + [s.version for s in self.shadow]


class PolicyError(Exception):
    """A policy that cannot be used; ``field`` names the part that is wrong."""

    def __init__(self, message: str, field: str | None = None, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.malformed = malformed
        """The document is not JSON at all (not a policy that is wrong)."""


_ENCODER: Final = msgspec.json.Encoder(order="deterministic")
_DECODER: Final = msgspec.json.Decoder(RoutingPolicy)


def encode(policy: RoutingPolicy) -> bytes:
    """The policy's canonical JSON (sorted keys): what the file holds and the id hashes."""
    return _ENCODER.encode(policy)


def decode(raw: bytes) -> RoutingPolicy:
    """Decode a policy document strictly.

    Raises:
        PolicyError: not JSON, or not a policy (``field`` names the part, e.g.
            ``candidates[0].weight``).
    """
    try:
        return _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT.search(message)
        field = match["path"] if match and match["path"] else None
        named = re.search(r"field `(?P<name>[^`]+)`", message)
        if named:  # an unknown or missing field: msgspec's path names the object holding it
            field = f"{field}.{named['name']}" if field else named["name"]
        text = _AT.sub("", message)
        if text.startswith("Expected `float` >= 0.0") or text.startswith("Expected `float` <= 1.0"):
            text = "must be a number from 0 to 1"
        return _raise(f"{field or 'policy'}: {text}", field)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        reason = "empty" if not raw.strip() else f"not valid JSON ({exc})"
        raise PolicyError(f"the policy is {reason}", malformed=True) from None


def _raise(message: str, field: str | None) -> RoutingPolicy:
    raise PolicyError(message, field)


def check(policy: RoutingPolicy, registry: Registry) -> None:
    """Refuse a policy serving could not follow.

    Every version exists and passed its parity gate; the primary is the served version; no
    version is named twice; weights sum to at most 1; ``sticky_key`` is ``header:<Name>``.

    Raises:
        PolicyError: naming the field at fault.
    """
    current = registry.current_version()
    if policy.primary != current:
        raise PolicyError(
            f"primary must be the served version {current} (got {shown_name(policy.primary)}): "
            "promote a version before making it the primary",
            "primary",
        )
    named = [("primary", policy.primary)]
    named += [(f"candidates[{i}].version", c.version) for i, c in enumerate(policy.candidates)]
    named += [(f"shadow[{i}].version", s.version) for i, s in enumerate(policy.shadow)]
    if len(named) - 1 > MAX_EXTRA_VERSIONS:
        raise PolicyError(
            f"a policy names at most {MAX_EXTRA_VERSIONS} candidates and shadows together "
            f"(got {len(named) - 1}): each is one more model in every worker's memory",
            "candidates",
        )
    seen: dict[str, str] = {}
    for field, version in named:
        if version in seen:
            raise PolicyError(f"{field}: {version} is already named by {seen[version]}", field)
        seen[version] = field
        _check_version(registry, version, field)
    total = sum(c.weight for c in policy.candidates)
    if total > 1.0 + 1e-9:
        raise PolicyError(f"candidates: the weights sum to {total:g}, more than 1", "candidates")
    if policy.sticky_key is not None and not _STICKY.fullmatch(policy.sticky_key):
        raise PolicyError(
            f"sticky_key must be header:<Header-Name> (got {policy.sticky_key[:70]!r})",
            "sticky_key",
        )


def _check_version(registry: Registry, version: str, field: str) -> None:
    try:
        folder = registry.version_dir(version)
    except RegistryError as exc:
        raise PolicyError(f"{field}: {exc}", field) from None
    if version not in registry.versions():
        raise PolicyError(f"{field}: no published version {version!r}", field)
    try:
        passed = read_metadata(folder).parity.passed
    except ArtifactError as exc:
        raise PolicyError(f"{field}: version {version} is unreadable: {exc}", field) from None
    if not passed:
        raise PolicyError(f"{field}: version {version} did not pass its parity gate", field)


def policy_path(registry: Registry) -> Path:
    """Where the registry's policy lives (it may not exist)."""
    return registry.root / POLICY_FILE


def read(registry: Registry) -> RoutingPolicy | None:
    """The registry's policy, or None when there is none.

    Raises:
        PolicyError: the file exists but is not a policy.
    """
    try:
        raw = policy_path(registry).read_bytes()
    except FileNotFoundError:
        return None
    return decode(raw)


def write(registry: Registry, policy: RoutingPolicy) -> None:
    """Replace the policy atomically (check it first with ``check``)."""
    registry.root.mkdir(parents=True, exist_ok=True)
    tmp = registry.root / f".{POLICY_FILE}.{os.getpid()}.tmp"
    tmp.write_bytes(encode(policy))
    os.replace(tmp, policy_path(registry))


def clear(registry: Registry) -> RoutingPolicy | None:
    """Remove the policy (one model answers again); returns the one removed, if any."""
    try:
        previous = read(registry)
    except PolicyError:
        previous = None
    policy_path(registry).unlink(missing_ok=True)
    return previous
