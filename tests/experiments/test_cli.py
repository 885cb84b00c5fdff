"""``python -m training routing show|set|clear`` on a private registry (in process)."""

from __future__ import annotations

import msgspec
import pytest

from drugclf import routing
from tests.experiments.conftest import Versions
from training.cli import main


def _run(versions: Versions, *args: str) -> int:
    return main(["routing", *args, "--artifacts-dir", str(versions.registry.root)])


def test_set_show_clear(versions: Versions, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(versions, "show") == 0
    assert f"{versions.primary} answers every request" in capsys.readouterr().out
    code = _run(
        versions,
        "set",
        "--candidate",
        f"{versions.candidate}=0.25",
        "--shadow",
        versions.shadow,
        "--sticky-key",
        "header:X-Subject-Id",
    )
    assert code == 0
    policy = routing.read(versions.registry)
    assert policy is not None and policy.primary == versions.primary
    assert policy.candidates[0].weight == 0.25 and policy.shadow[0].fraction == 1.0
    assert policy.policy_id in capsys.readouterr().out
    assert _run(versions, "clear") == 0
    assert "removed policy" in capsys.readouterr().out
    assert routing.read(versions.registry) is None


def test_a_bad_policy_is_refused_naming_the_field(
    versions: Versions, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _run(versions, "set", "--candidate", f"{versions.candidate}=1.5")
    assert exited.value.code == 2
    assert "candidates[0].weight" in capsys.readouterr().err
    document = {"primary": versions.primary, "shadow": [{"version": "nope", "fraction": 1}]}
    with pytest.raises(SystemExit):
        _run(versions, "set", "--json", msgspec.json.encode(document).decode())
    assert "shadow[0].version" in capsys.readouterr().err
    assert routing.read(versions.registry) is None


def test_promote_says_it_ended_the_policy(
    versions: Versions, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The registry's warning: the CLI shows warnings on stderr (pytest captures them here)."""
    assert _run(versions, "set", "--candidate", f"{versions.candidate}=0.1") == 0
    capsys.readouterr()
    assert (
        main(["promote", versions.candidate, "--artifacts-dir", str(versions.registry.root)]) == 0
    )
    assert f"the traffic policy of primary {versions.primary} ended" in caplog.text
    assert routing.read(versions.registry) is None


@pytest.mark.parametrize("damaged", ["cells.npz", "explainer.onnx"])
def test_a_version_with_a_damaged_file_is_refused(
    versions: Versions, capsys: pytest.CaptureFixture[str], damaged: str
) -> None:
    """Every file the metadata binds is checked, as promote checks them, not only the model."""
    (versions.registry.version_dir(versions.shadow) / damaged).write_bytes(b"damaged")
    code = _run(versions, "set", "--shadow", versions.shadow)
    assert code == 2
    err = capsys.readouterr().err
    assert damaged in err and "its metadata describes" in err
    assert routing.read(versions.registry) is None
