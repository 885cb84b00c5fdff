"""The policy document: strict decoding, validation naming the field, atomic file, content id."""

from __future__ import annotations

import msgspec
import pytest

from drugclf import routing
from drugclf.routing import Candidate, PolicyError, RoutingPolicy, Shadow
from loadtests.bench import experiments
from tests.experiments.conftest import Versions, policy
from tests.support import edit_metadata


def _check(versions: Versions, document: dict[str, object]) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        routing.check(routing.decode(msgspec.json.encode(document)), versions.registry)
    return caught.value


def test_a_valid_policy_passes_and_round_trips(versions: Versions) -> None:
    document = policy(versions)
    decoded = routing.decode(msgspec.json.encode(document))
    routing.check(decoded, versions.registry)
    routing.write(versions.registry, decoded)
    assert routing.read(versions.registry) == decoded
    assert decoded.versions() == [versions.primary, versions.candidate, versions.shadow]
    assert decoded.sticky_header == "x-subject-id"


@pytest.mark.parametrize(
    "edit,field",
    [
        (lambda d: d["candidates"][0].update(weight=1.5), "candidates[0].weight"),
        (lambda d: d["candidates"][0].update(weight=-0.1), "candidates[0].weight"),
        (lambda d: d["shadow"][0].update(fraction=2), "shadow[0].fraction"),
        (lambda d: d["shadow"][0].update(fraction="all"), "shadow[0].fraction"),
        (lambda d: d.update(primary=7), "primary"),
        (lambda d: d.pop("primary"), "primary"),
        (lambda d: d.update(extra=True), "extra"),
        (lambda d: d["candidates"][0].update(colour="red"), "candidates[0].colour"),
    ],
)
def test_a_malformed_policy_names_the_field(versions: Versions, edit: object, field: str) -> None:
    document = policy(versions)
    edit(document)  # type: ignore[operator]
    with pytest.raises(PolicyError) as caught:
        routing.decode(msgspec.json.encode(document))
    assert caught.value.field == field
    assert field in caught.value.message


def test_not_json_is_malformed() -> None:
    with pytest.raises(PolicyError) as caught:
        routing.decode(b"{nope")
    assert caught.value.malformed


def test_unknown_versions_and_a_primary_that_is_not_served_are_refused(
    versions: Versions,
) -> None:
    document = policy(versions)
    document["candidates"] = [{"version": "20990101-000000-abcdef", "weight": 0.1}]
    error = _check(versions, document)
    assert error.field == "candidates[0].version" and "no published version" in error.message
    document = policy(versions)
    document["shadow"] = [{"version": "../etc", "fraction": 1}]
    assert _check(versions, document).field == "shadow[0].version"
    document = policy(versions)
    document["primary"] = versions.candidate
    error = _check(versions, document)
    assert error.field == "primary" and versions.primary in error.message
    document["primary"] = "x" * 100_000  # a client's text is cut, not echoed whole
    error = _check(versions, document)
    assert error.field == "primary" and len(error.message) < 200


def test_weights_over_one_and_a_version_named_twice_are_refused(versions: Versions) -> None:
    document = policy(versions, weight=0.7)
    document["candidates"] = [
        {"version": versions.candidate, "weight": 0.7},
        {"version": versions.shadow, "weight": 0.4},
    ]
    document["shadow"] = []
    error = _check(versions, document)
    assert error.field == "candidates" and "1.1" in error.message
    document = policy(versions)
    document["shadow"] = [{"version": versions.candidate, "fraction": 1}]
    error = _check(versions, document)
    assert error.field == "shadow[0].version" and "candidates[0].version" in error.message


def test_a_version_that_failed_parity_is_refused(versions: Versions) -> None:
    def fail(meta: dict[str, object]) -> None:
        parity = meta["parity"]
        assert isinstance(parity, dict)
        parity["label_mismatches"] = 3

    edit_metadata(versions.registry.root / versions.shadow, fail)
    error = _check(versions, policy(versions))
    assert error.field == "shadow[0].version" and "parity" in error.message


@pytest.mark.parametrize("sticky", ["cookie:id", "header:", "header:a b", "X-Subject-Id"])
def test_a_sticky_key_must_name_a_header(versions: Versions, sticky: str) -> None:
    document = policy(versions)
    document["sticky_key"] = sticky
    assert _check(versions, document).field == "sticky_key"


def test_the_id_follows_the_content_only() -> None:
    a = RoutingPolicy("v1", [Candidate("v2", 0.1)], [Shadow("v3")])
    b = routing.decode(
        b'{"shadow":[{"fraction":1.0,"version":"v3"}],"candidates":[{"weight":0.1,"version":"v2"}],'
        b'"primary":"v1"}'
    )
    assert a.policy_id == b.policy_id
    assert RoutingPolicy("v1", [Candidate("v2", 0.2)]).policy_id != a.policy_id


def test_promote_and_rollback_end_a_policy_of_another_primary(versions: Versions) -> None:
    registry = versions.registry
    decoded = routing.decode(msgspec.json.encode(policy(versions)))
    routing.write(registry, decoded)
    registry.promote(versions.primary)  # the served version again: the policy stays
    assert routing.read(registry) == decoded
    registry.promote(versions.candidate)
    assert routing.read(registry) is None
    routing.write(registry, msgspec.structs.replace(decoded, primary=versions.candidate))
    assert registry.rollback() == versions.primary
    assert routing.read(registry) is None
    assert not list(registry.root.glob(".routing*"))  # no temporary file left


def test_the_benchmark_policy_is_valid(versions: Versions) -> None:
    """``make bench``'s A/B scenario writes a policy the checks accept, and removes it."""

    experiments.apply(versions.registry, True)
    written = routing.read(versions.registry)
    assert written is not None and written.candidates[0].weight == experiments.SPLIT
    experiments.apply(versions.registry, False)
    assert routing.read(versions.registry) is None
