"""``make doctor``: each check finds what is there and names the fix for what is not."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import ROOT, bare_env
from training import doctor


def test_python_below_3_11_is_required_and_says_how_to_fix_it() -> None:
    assert doctor.check_python((3, 11, 7)).status == "ok"
    old = doctor.check_python((3, 10, 12))
    assert old.status == "FAIL" and "3.10.12" in old.detail and "apt-get install" in old.fix


def test_a_missing_venv_fails_and_another_interpreter_warns(tmp_path: Path) -> None:
    missing = doctor.check_venv(tmp_path)
    assert missing.status == "FAIL" and missing.fix == "make install"
    assert doctor.check_venv(ROOT, sys.prefix).status in ("ok", "warn")
    other = doctor.check_venv(ROOT, "/usr")
    if (ROOT / ".venv" / "bin" / "python").exists():
        assert other.status == "warn" and ".venv/bin/python" in other.fix


def test_extras_required_and_optional(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\noptional-dependencies = {serve = ["msgspec>=0.19", "no-such-dist-p20>=1"],'
        ' watch = ["no-such-dist-p20[x]>=1; sys_platform != \'win32\'"], train = ["pytest"]}\n'
        '[dependency-groups]\ndev = ["pytest>=8", {include-group = "other"}]\n',
        encoding="utf-8",
    )
    checks = {c.name: c for c in doctor.check_extras(pyproject)}
    assert checks["extra serve"].status == "FAIL"
    assert checks["extra serve"].detail == "missing no-such-dist-p20"
    assert checks["extra serve"].fix == "make install"
    assert checks["extra watch"].status == "warn"  # optional: a warning
    assert checks["extra train"].status == "ok" and checks["dev tools"].status == "ok"


def test_the_projects_own_extras_are_all_checked() -> None:
    names = {c.name for c in doctor.check_extras()}
    assert {"extra serve", "extra train", "extra mlflow", "extra watch", "dev tools"} <= names


def test_a_published_model_loads_and_answers(model_copy: Callable[[str], Path]) -> None:
    found = doctor.check_model(model_copy("doctor") / "artifacts")
    assert found.status == "ok", found.detail
    assert "loads and answers" in found.detail


def test_no_model_or_a_damaged_one_fails_with_make_pipeline(
    tmp_path: Path, model_copy: Callable[[str], Path]
) -> None:
    empty = doctor.check_model(tmp_path)
    assert empty.status == "FAIL" and "make pipeline" in empty.fix
    artifacts = model_copy("doctor-damaged") / "artifacts"
    (artifacts / "current" / "model.onnx").write_bytes(b"not a model")
    damaged = doctor.check_model(artifacts)
    assert damaged.status == "FAIL" and "does not load" in damaged.detail


def test_a_port_in_use_is_a_warning_with_another_port_to_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = doctor.check_port(port)
    assert busy.status == "warn" and "in use" in busy.detail
    assert busy.fix.endswith(f"PORT={port + 1}")
    assert doctor.check_port(port).status == "ok"


def test_a_missing_tool_names_its_install_command() -> None:
    tool = doctor.Tool("wrk", "the bench", "sudo apt-get install wrk", lambda: None)
    found = doctor.check_tool(tool)
    assert found.status == "warn" and found.fix == "sudo apt-get install wrk"
    assert "the bench" in found.line() and "-> sudo apt-get install wrk" in found.line()
    assert doctor.check_tool(doctor.Tool("sh", "", "", doctor._on_path("sh"))).status == "ok"


@pytest.mark.parametrize("tool", doctor.TOOLS, ids=[t.name for t in doctor.TOOLS])
def test_every_tool_is_looked_for_without_error(tool: doctor.Tool) -> None:
    assert doctor.check_tool(tool).status in ("ok", "warn")


def test_main_exits_1_and_says_what_to_fix_when_a_required_check_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_copy: Callable[[str], Path]
) -> None:
    assert doctor.main(["--artifacts-dir", str(tmp_path), "--port", "0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  model" in out and "not ready: model must be fixed" in out

    ready = doctor.main(["--artifacts-dir", str(model_copy("doctor-main") / "artifacts")])
    out = capsys.readouterr().out
    assert "  ok    model" in out and "  ok    Python" in out
    if ready == 0:  # the machine has everything required (the venv, serve, train)
        assert out.splitlines()[-1].startswith("ready")


def test_the_doctor_runs_as_a_module_with_only_the_standard_library_at_hand(
    tmp_path: Path,
) -> None:
    """``python -m training.doctor`` under an interpreter without the project's packages."""
    out = subprocess.run(
        [sys.executable, "-S", "-m", "training.doctor", "--artifacts-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=bare_env(PATH="/usr/bin:/bin"),
    )
    assert out.returncode == 1, out.stderr
    assert "FAIL  model" in out.stdout and "make install" in out.stdout


def test_make_doctor_fails_the_make_run_until_a_model_is_published(
    tmp_path: Path, model_copy: Callable[[str], Path]
) -> None:
    def make_doctor(artifacts: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-s", "doctor", f"ARTIFACTS={artifacts}", "PORT=0"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    missing = make_doctor(tmp_path)
    assert missing.returncode != 0 and "not ready: model" in missing.stdout
    published = make_doctor(model_copy("make-doctor") / "artifacts")
    assert "  ok    model" in published.stdout, published.stdout


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_out_of_range_is_a_usage_error_not_a_traceback(
    port: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as given:
        doctor.main(["--port", port])
    assert given.value.code == 2
    assert f"a port is a whole number from 0 to 65535 (got '{port}')" in capsys.readouterr().err
    monkeypatch.setenv("DRUGCLF_PORT", port)  # the same check for the environment's default
    with pytest.raises(SystemExit) as given:
        doctor.main([])
    assert given.value.code == 2
