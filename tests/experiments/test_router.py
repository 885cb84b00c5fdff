"""The traffic split of one worker: weights over 10,000 keys, stickiness, shadows, a stale policy."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import msgspec
import pytest

from drugclf import routing
from serving.experiments.router import TrafficRouter
from serving.experiments.shadows import ShadowQueue
from serving.http.metrics import ServerMetrics
from serving.inference.holder import ModelHolder
from tests.experiments.conftest import Versions, policy
from tests.support import point_current_at

KEYS = 10_000


@pytest.fixture
def router(versions: Versions) -> Iterator[TrafficRouter]:
    """A router over the private registry, its holder serving the primary."""
    holder = ModelHolder(versions.registry)
    holder.load_current()
    metrics = ServerMetrics()
    yield TrafficRouter(versions.registry, holder, ShadowQueue(metrics, None, metrics.registry))


def _set(versions: Versions, router: TrafficRouter, document: dict[str, object]) -> None:
    routing.write(versions.registry, routing.decode(msgspec.json.encode(document)))
    router.load_now()


def _versions_by_key(router: TrafficRouter, keys: range) -> dict[int, str]:
    chosen = {}
    for key in keys:
        choice = router.choose([(b"x-subject-id", str(key).encode())])
        assert choice is not None
        chosen[key] = choice.model.version
    return chosen


@pytest.mark.parametrize("weight", [0.1, 0.5])
def test_the_split_lands_within_3_percent_of_its_weight_over_10000_keys(
    versions: Versions, router: TrafficRouter, weight: float
) -> None:
    _set(versions, router, policy(versions, weight=weight))
    counts = Counter(_versions_by_key(router, range(KEYS)).values())
    assert set(counts) == {versions.primary, versions.candidate}
    assert abs(counts[versions.candidate] / KEYS - weight) <= 0.03


def test_without_the_key_the_split_is_random_by_weight(
    versions: Versions, router: TrafficRouter
) -> None:
    _set(versions, router, policy(versions, weight=0.2))
    counts: Counter[str] = Counter()
    for _ in range(KEYS):
        choice = router.choose([])
        assert choice is not None
        counts[choice.role] += 1
    assert abs(counts["candidate"] / KEYS - 0.2) <= 0.03


def test_a_key_keeps_its_version_until_the_policy_changes(
    versions: Versions, router: TrafficRouter
) -> None:
    _set(versions, router, policy(versions, weight=0.5))
    first = _versions_by_key(router, range(2000))
    assert _versions_by_key(router, range(2000)) == first  # the same key, the same version
    changed = policy(versions, weight=0.5)
    changed["shadow"] = []  # another policy id: assignments are drawn again
    _set(versions, router, changed)
    again = _versions_by_key(router, range(2000))
    moved = sum(first[k] != again[k] for k in first)
    assert 700 < moved < 1300  # about half move when both halves are drawn again


def test_shadows_follow_their_fraction_and_candidates_get_the_primary_as_a_listener(
    versions: Versions, router: TrafficRouter
) -> None:
    _set(versions, router, policy(versions, weight=0.1, fraction=0.3))
    shadowed, with_primary = 0, 0
    for key in range(KEYS):
        choice = router.choose([(b"x-subject-id", str(key).encode())])
        assert choice is not None
        listeners = [m.version for m in choice.shadows]
        shadowed += versions.shadow in listeners
        if choice.role == "candidate":
            with_primary += listeners[0] == versions.primary
        else:
            assert versions.primary not in listeners
    assert abs(shadowed / KEYS - 0.3) <= 0.03
    assert with_primary > 0


def test_no_policy_and_a_stale_primary_leave_the_served_model_alone(
    versions: Versions, router: TrafficRouter
) -> None:
    assert router.choose([]) is None
    _set(versions, router, policy(versions))
    assert router.choose([]) is not None
    # current moved by hand (not by promote, which ends the policy): the policy is not applied
    point_current_at(versions.registry, versions.candidate)
    router.holder.load_current()
    assert router.choose([]) is None
    routing.clear(versions.registry)
    router.load_now()
    assert router.active is None


def test_a_damaged_policy_file_keeps_the_previous_policy(
    versions: Versions, router: TrafficRouter
) -> None:
    _set(versions, router, policy(versions))
    before = router.active
    routing.policy_path(versions.registry).write_bytes(b'{"primary": 1}')
    router.load_now()
    assert router.active is before
    assert router.refused is not None and "primary" in router.refused


def test_a_full_shadow_queue_skips_and_counts(versions: Versions) -> None:
    holder = ModelHolder(versions.registry)
    model = holder.load_current()
    metrics = ServerMetrics()
    queue = ShadowQueue(metrics, None, metrics.registry, max_requests=2)
    assert queue.offer((model,), [], "a") and queue.offer((model,), [], "b")
    assert not queue.offer((model,), [], "c")  # full: skipped, counted, the request unharmed
    assert queue.waiting == 2
    skipped = metrics.registry.get_sample_value(
        "drugclf_shadow_skipped_total", {"version": model.version}
    )
    assert skipped == 1.0
