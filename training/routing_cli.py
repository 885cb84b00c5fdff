"""``python -m training routing show|set|clear``: the traffic policy from the command line.

The same checks as ``PUT /routing`` (``drugclf.routing.check``, and every version's model file
bound to its metadata), the same atomic file: every server sharing the registry follows it
within its reload interval.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console

from drugclf import routing
from drugclf.registry import Registry, check_version_files
from drugclf.routing import Candidate, PolicyError, RoutingPolicy, Shadow

EXIT_USER_ERROR = 2

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(Path(args.artifacts_dir))


def _share(text: str) -> tuple[str, float]:
    """``VERSION=SHARE`` (share from 0 to 1), or ``VERSION`` alone (share 1)."""
    version, _, share = text.partition("=")
    if not share:
        return version, 1.0
    try:
        return version, float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{share!r} in {text!r} is not a number") from None


def _show(policy: RoutingPolicy | None, registry: Registry) -> None:
    if policy is None:
        console.print(f"no traffic policy: {registry.current_version()} answers every request")
        return
    console.print(f"policy {policy.policy_id}")
    console.print(json.dumps(msgspec.to_builtins(policy), indent=2))


def cmd_show(args: argparse.Namespace) -> None:
    """Print the registry's policy."""
    registry = _registry(args)
    try:
        _show(routing.read(registry), registry)
    except PolicyError as exc:
        _fail(f"{routing.policy_path(registry)} is not a policy: {exc}")


def _policy_from(args: argparse.Namespace, registry: Registry) -> RoutingPolicy:
    if args.json is not None:
        raw = Path(args.json[1:]).read_bytes() if args.json.startswith("@") else args.json.encode()
        return routing.decode(raw)
    document: dict[str, Any] = {
        "primary": args.primary or registry.current_version(),
        "candidates": [Candidate(v, w) for v, w in args.candidate],
        "shadow": [Shadow(v, f) for v, f in args.shadow],
        "sticky_key": args.sticky_key,
    }
    return routing.decode(msgspec.json.encode(document))


def cmd_set(args: argparse.Namespace) -> None:
    """Check and write a policy (from flags, or a JSON document)."""
    registry = _registry(args)
    try:
        policy = _policy_from(args, registry)
        routing.check(policy, registry)
    except PolicyError as exc:
        _fail(f"policy refused, nothing written: {exc}")
    for version in policy.versions()[1:]:
        folder = registry.version_dir(version)
        check_version_files(folder)  # refuse what serving would refuse to load
    routing.write(registry, policy)
    console.print("traffic policy written; servers follow it within their reload interval")
    _show(policy, registry)


def cmd_clear(args: argparse.Namespace) -> None:
    """Remove the policy: the current version answers everything."""
    registry = _registry(args)
    removed = routing.clear(registry)
    if removed is None:
        console.print("no traffic policy to remove")
        return
    console.print(f"removed policy {removed.policy_id}: {registry.current_version()} answers alone")


def _fail(message: str) -> None:
    errors.print(f"error: {message}")
    raise SystemExit(EXIT_USER_ERROR)


def add_routing_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add ``routing show|set|clear`` to the CLI's commands."""
    p = sub.add_parser("routing", help="show, set or clear the traffic policy")
    commands = p.add_subparsers(dest="routing_command", required=True)
    commands.add_parser("show", parents=parents, help="print the policy").set_defaults(
        func=cmd_show
    )
    s = commands.add_parser(
        "set",
        parents=parents,
        help="check and write a policy",
        description="Candidates answer a share of requests, shadows also predict a share "
        "after the answer (logged, never returned). The primary is the current version.",
    )
    s.add_argument("--primary", help="the current version (the default)")
    s.add_argument(
        "--candidate",
        type=_share,
        action="append",
        default=[],
        metavar="VERSION=WEIGHT",
        help="a version answering WEIGHT (0 to 1) of the requests; repeat for more",
    )
    s.add_argument(
        "--shadow",
        type=_share,
        action="append",
        default=[],
        metavar="VERSION[=FRACTION]",
        help="a version also predicting FRACTION (default 1) of the requests; repeat for more",
    )
    s.add_argument("--sticky-key", help="header:<Name>: one version per value of that header")
    s.add_argument(
        "--json", help="the whole policy as JSON, or @file.json (instead of the other flags)"
    )
    s.set_defaults(func=cmd_set)
    commands.add_parser("clear", parents=parents, help="remove the policy").set_defaults(
        func=cmd_clear
    )
