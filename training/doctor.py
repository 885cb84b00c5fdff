"""``make doctor``: is this machine ready to train, serve and test? And if not, how to fix it.

Each check says what it found and, when something is missing, the command that fixes it. The
exit status is 1 when a required check fails (Python, the virtual environment, the ``serve`` and
``train`` extras, a loadable model); what only some tests or targets need is a warning.

Only the standard library at the top: the doctor must run where the environment is broken,
even with the system's Python (``python3 -m training.doctor``).
"""

from __future__ import annotations

import argparse
import errno
import glob
import importlib.metadata
import os
import re
import shutil
import socket
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

ROOT: Final = Path(__file__).resolve().parents[1]
MIN_PYTHON: Final = (3, 11)
REQUIRED_EXTRAS: Final = ("serve", "train")
DEFAULT_PORT: Final = 8000
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")

Status = Literal["ok", "warn", "FAIL"]


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, what was found, and the command that fixes it."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        """The finding as one line of the report."""
        fix = f"  -> {self.fix}" if self.fix and self.status != "ok" else ""
        return f"  {self.status:<4}  {self.name:<18} {self.detail}{fix}"


def _found(name: str, required: bool, detail: str, fix: str, ok: bool) -> Check:
    return Check(name, "ok" if ok else ("FAIL" if required else "warn"), detail, fix)


def check_python(version: Sequence[int] = tuple(sys.version_info[:3])) -> Check:
    """Python 3.11 or newer."""
    shown = ".".join(str(part) for part in version)
    needed = ".".join(str(part) for part in MIN_PYTHON)
    return _found(
        "Python",
        True,
        f"{shown} ({needed}+ needed)",
        "install Python 3.11 or newer (sudo apt-get install python3), then make install",
        tuple(version[:2]) >= MIN_PYTHON,
    )


def check_venv(root: Path = ROOT, prefix: str = sys.prefix) -> Check:
    """The project's ``.venv`` exists and is the interpreter running this."""
    venv = root / ".venv"
    if not (venv / "bin" / "python").exists():
        return Check("virtual env", "FAIL", f"{venv} does not exist", "make install")
    if Path(prefix).resolve() != venv.resolve():
        return Check(
            "virtual env",
            "warn",
            f"{venv} exists, but this is {prefix}",
            f"run {venv}/bin/python (make targets do)",
        )
    return Check("virtual env", "ok", str(venv))


def _requirement_name(requirement: str) -> str | None:
    spec, _, marker = requirement.partition(";")
    if "win32" in marker and sys.platform == "win32":  # only uvloop has a marker: not on Windows
        return None
    match = _NAME.match(spec.strip())
    return match.group(0) if match else None


def missing_packages(requirements: Sequence[str]) -> list[str]:
    """The distributions of ``requirements`` that are not installed."""
    missing = []
    for requirement in requirements:
        name = _requirement_name(requirement)
        if name is None:
            continue
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def check_extras(pyproject: Path = ROOT / "pyproject.toml") -> list[Check]:
    """Every extra of pyproject.toml, and the dev tools: installed or not."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    groups: dict[str, list[str]] = dict(project["project"]["optional-dependencies"])
    groups["dev"] = [
        g for g in project.get("dependency-groups", {}).get("dev", []) if isinstance(g, str)
    ]
    checks = []
    for extra, requirements in groups.items():
        missing = missing_packages(requirements)
        label = "dev tools" if extra == "dev" else f"extra {extra}"
        detail = f"missing {', '.join(missing)}" if missing else "installed"
        checks.append(_found(label, extra in REQUIRED_EXTRAS, detail, "make install", not missing))
    return checks


def check_model(artifacts: Path) -> Check:
    """``artifacts/current`` is published, bound to its metadata, and answers a prediction."""
    fix = "make pipeline (train, export and promote a model)"
    try:
        import numpy as np  # noqa: PLC0415 (the doctor must start without the extras)
        import onnxruntime as ort  # noqa: PLC0415

        from drugclf.artifact import ArtifactError, read_metadata, read_model  # noqa: PLC0415
        from drugclf.contract import CLASSES, SAMPLE_PATIENT  # noqa: PLC0415
        from drugclf.registry import Registry  # noqa: PLC0415
    except ImportError as exc:
        return Check("model", "FAIL", f"cannot check: {exc}", "make install")
    try:
        folder = Registry(artifacts).resolve_current()
        meta = read_metadata(folder)
        session = ort.InferenceSession(read_model(folder, meta), providers=["CPUExecutionProvider"])
        dtypes = {"int64": np.int64, "double": np.float64, "string": np.str_}
        feed: dict[str, object] = {
            spec.name: np.array(
                [[getattr(SAMPLE_PATIENT, spec.name)]], dtype=dtypes[spec.element_type]
            )
            for spec in meta.inputs
        }
        label = str(session.run(None, feed)[0][0])
    except (ArtifactError, OSError, RuntimeError, ValueError) as exc:
        return Check("model", "FAIL", f"{artifacts}/current does not load: {exc}", fix)
    if label not in CLASSES:
        return Check("model", "FAIL", f"{meta.version} answered {label!r}, not a class", fix)
    return Check("model", "ok", f"{meta.version} loads and answers ({label} for the sample)")


def check_port(port: int, host: str = "127.0.0.1") -> Check:
    """Nothing listens on the serving port yet."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            return Check(
                "serving port",
                "warn",
                f"{host}:{port} {why}",
                f"stop what listens there, or make serve PORT={port + 1}",
            )
    return Check("serving port", "ok", f"{host}:{port} free")


@dataclass(frozen=True)
class Tool:
    """A program some tests or targets drive: how to find it and how to install it."""

    name: str
    used_by: str
    install: str
    find: Callable[[], str | None]


def _on_path(*names: str) -> Callable[[], str | None]:
    return lambda: next((found for n in names if (found := shutil.which(n))), None)


def _postgres() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return found[-1] if found else shutil.which("initdb")


def _chromium() -> str | None:
    configured = os.environ.get("DRUGCLF_CHROMIUM", "/usr/bin/chromium")
    return configured if Path(configured).is_file() else shutil.which("chromium")


TOOLS: Final = (
    Tool("chromium", "the web UI's browser tests", "sudo apt-get install chromium", _chromium),
    Tool("wrk", "make bench and its tests", "sudo apt-get install wrk", _on_path("wrk")),
    Tool(
        "PostgreSQL",
        "the prediction log's PostgreSQL tests (initdb)",
        "sudo apt-get install postgresql",
        _postgres,
    ),
    Tool(
        "podman or docker",
        "make docker-build, docker-test",
        "sudo apt-get install podman",
        _on_path("podman", "docker"),
    ),
    Tool(
        "haproxy", "balancing several replicas", "sudo apt-get install haproxy", _on_path("haproxy")
    ),
)


def check_tool(tool: Tool) -> Check:
    """A tool is found (a warning otherwise: the tests that need it skip)."""
    found = tool.find()
    if found:
        return Check(tool.name, "ok", found)
    return Check(tool.name, "warn", f"not found ({tool.used_by} skip or fail)", tool.install)


def run_checks(artifacts: Path, port: int) -> list[Check]:
    """Every check, in the order of the report."""
    return [
        check_python(),
        check_venv(),
        *check_extras(),
        check_model(artifacts),
        check_port(port),
        *(check_tool(tool) for tool in TOOLS),
    ]


def _port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 0 to 65535 (got {text!r})")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report; 1 when a required check failed."""
    parser = argparse.ArgumentParser(prog="python -m training.doctor", description=__doc__)
    parser.add_argument(
        "--artifacts-dir",
        type=Path,
        default=Path(os.environ.get("DRUGCLF_ARTIFACTS_DIR", "artifacts")),
    )
    # A string default goes through type= too: a bad DRUGCLF_PORT is a usage error, not a crash.
    parser.add_argument(
        "--port", type=_port, default=os.environ.get("DRUGCLF_PORT", str(DEFAULT_PORT))
    )
    args = parser.parse_args(argv)
    checks = run_checks(args.artifacts_dir, args.port)
    for check in checks:
        print(check.line())  # noqa: T201 (a report for a person)
    failed = [c.name for c in checks if c.status == "FAIL"]
    warned = [c.name for c in checks if c.status == "warn"]
    if failed:
        print(f"not ready: {', '.join(failed)} must be fixed (see -> above)")  # noqa: T201
        return 1
    extra = f"; optional: {', '.join(warned)}" if warned else ""
    print(f"ready{extra}")  # noqa: T201
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
