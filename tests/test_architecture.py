"""The import rules of docs/architecture.md ("Import rules").

Each rule is checked on the source: every ``import`` and ``from ... import`` statement of every
module, those inside functions and under ``TYPE_CHECKING`` too, relative ones resolved. One more
test runs the serving app in a process that refuses the training stack, which also catches an
import made by a library that serving uses.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

import pytest

from tests.support import PATIENT, ROOT

# Installed only by the `train` extra (scipy and matplotlib come with it): the slim serving image
# has none of them, so serving must not import them, even inside a function.
TRAINING_STACK: Final = (
    "training",
    "sklearn",
    "imblearn",
    "pandas",
    "skl2onnx",
    "scipy",
    "matplotlib",
)
# The training side's optional extras (mlflow, watch, batch): never in the serving image either.
TRAINING_EXTRAS: Final = ("mlflow", "watchfiles", "dask", "distributed", "pyarrow")
FEATURES: Final = (
    "inference",
    "lifecycle",
    "monitoring",
    "ui",
    "explain",
    "v2",
    "experiments",
)
APART: Final = ("lifecycle", "monitoring", "ui", "explain", "v2", "experiments")
"""The feature packages that may use inference and http, never each other."""
# Where the feature packages' routes are wired together.
COMPOSITION_ROOTS: Final = ("serving.app", "serving.__main__")


@dataclass(frozen=True)
class Import:
    """One imported module, as a statement of ``importer`` names it (relative ones resolved)."""

    importer: str
    imported: str
    where: str

    def __str__(self) -> str:
        return f"{self.importer} imports {self.imported} ({self.where})"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of this repository (not an attribute)."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports_of(path: Path) -> Iterator[Import]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, where)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            yield Import(module, source, where)
            # `from serving import inference` imports the package serving.inference.
            for alias in node.names:
                if _is_module(f"{source}.{alias.name}"):
                    yield Import(module, f"{source}.{alias.name}", where)


@cache
def imports(package: str) -> tuple[Import, ...]:
    """Every import made by the modules of ``package`` (a top-level folder of the repository)."""
    return tuple(
        found for path in sorted((ROOT / package).rglob("*.py")) for found in _imports_of(path)
    )


def _within(name: str, *packages: str) -> bool:
    return any(name == package or name.startswith(f"{package}.") for package in packages)


def _feature_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "serving" and parts[1] in FEATURES else None


def _routes_of_another_feature(found: Import) -> bool:
    parts = found.imported.split(".")
    routes = (
        len(parts) == 3 and parts[0] == "serving" and parts[1] in FEATURES and parts[2] == "routes"
    )
    return (
        routes
        and found.importer not in COMPOSITION_ROOTS
        and _feature_of(found.importer) != parts[1]
    )


@dataclass(frozen=True)
class Rule:
    """A rule of docs/architecture.md: the imports of ``package`` that break it."""

    name: str
    text: str
    package: str
    breaks: Callable[[Import], bool]

    def broken_by(self) -> list[str]:
        return [str(found) for found in imports(self.package) if self.breaks(found)]


RULES: Final = [
    Rule(
        "drugclf-sides",
        "drugclf imports neither training nor serving",
        "drugclf",
        lambda i: _within(i.imported, "training", "serving"),
    ),
    Rule(
        "drugclf-msgspec-only",
        "drugclf needs nothing but the standard library and msgspec (drugclf.cells: numpy too)",
        "drugclf",
        lambda i: (
            i.imported.partition(".")[0] not in sys.stdlib_module_names
            and not _within(i.imported, "drugclf", "msgspec")
            and not (i.importer == "drugclf.cells" and _within(i.imported, "numpy"))
        ),
    ),
    Rule(
        "drugclf-cells-apart",
        "no drugclf module imports drugclf.cells, so a base install (msgspec only) imports them all",
        "drugclf",
        lambda i: _within(i.imported, "drugclf.cells") and i.importer != "drugclf.cells",
    ),
    Rule(
        "serving-no-training",
        "serving never imports training or its libraries",
        "serving",
        lambda i: _within(i.imported, *TRAINING_STACK),
    ),
    Rule(
        "serving-no-training-extras",
        "serving never imports mlflow or watchfiles",
        "serving",
        lambda i: _within(i.imported, *TRAINING_EXTRAS),
    ),
    Rule(
        "mlflow-in-its-mirror",
        "only training.mlflow_mirror imports mlflow, so nothing else needs the extra",
        "training",
        lambda i: _within(i.imported, "mlflow") and i.importer != "training.mlflow_mirror",
    ),
    Rule(
        "http-no-features",
        "serving.http imports no feature package",
        "serving",
        lambda i: (
            _within(i.importer, "serving.http")
            and _within(i.imported, *(f"serving.{f}" for f in FEATURES))
        ),
    ),
    Rule(
        "inference-http-settings-only",
        "serving.inference imports only serving.http and serving.settings of serving",
        "serving",
        lambda i: (
            _within(i.importer, "serving.inference")
            and _within(i.imported, "serving")
            and not _within(i.imported, "serving.inference", "serving.http", "serving.settings")
        ),
    ),
    Rule(
        "features-apart",
        "serving's lifecycle, monitoring, ui, v2, explain and experiments never import each other",
        "serving",
        lambda i: (
            _feature_of(i.importer) in APART
            and _feature_of(i.imported) in APART
            and _feature_of(i.importer) != _feature_of(i.imported)
        ),
    ),
    Rule(
        "routes-meet-in-app",
        "only serving.app and serving.__main__ bring the features' routes together",
        "serving",
        _routes_of_another_feature,
    ),
]


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_import_rule(rule: Rule) -> None:
    assert rule.broken_by() == [], rule.text


def test_the_checker_sees_every_kind_of_import() -> None:
    """The rules above pass because nothing breaks them, not because imports were missed."""
    found = {(i.importer, i.imported) for i in imports("serving")}
    assert ("serving.app", "serving.inference.routes") in found  # from a.b import c
    assert ("serving.lifecycle.jobs", "serving.http.logs") in found  # from serving.http import logs
    assert ("serving.__main__", "uvicorn") in found  # inside a function
    assert ("serving.lifecycle.jobs", "importlib.util") in found  # import a.b
    assert ("training.cli", "drugclf.registry") in {
        (i.importer, i.imported) for i in imports("training")
    }


@pytest.mark.parametrize(
    ("name", "importer", "imported", "broken"),
    [
        ("drugclf-sides", "drugclf.contract", "serving.settings", True),
        ("drugclf-msgspec-only", "drugclf.registry", "numpy", True),
        ("drugclf-msgspec-only", "drugclf.registry", "msgspec.json", False),
        ("serving-no-training", "serving.inference.model", "sklearn.pipeline", True),
        ("serving-no-training-extras", "serving.lifecycle.service", "mlflow.client", True),
        ("mlflow-in-its-mirror", "training.cli", "mlflow", True),
        ("mlflow-in-its-mirror", "training.mlflow_mirror", "mlflow.entities", False),
        ("http-no-features", "serving.http.errors", "serving.inference.codec", True),
        ("inference-http-settings-only", "serving.inference.service", "serving.ui", True),
        ("inference-http-settings-only", "serving.inference.model", "serving.settings", False),
        ("features-apart", "serving.ui.routes", "serving.lifecycle.service", True),
        ("features-apart", "serving.monitoring.monitor", "serving.inference.holder", False),
        ("features-apart", "serving.experiments.router", "serving.monitoring.monitor", True),
        ("http-no-features", "serving.http.state", "serving.experiments.router", True),
        ("routes-meet-in-app", "serving.settings", "serving.ui.routes", True),
        ("routes-meet-in-app", "serving.app", "serving.ui.routes", False),
    ],
)
def test_each_rule_tells_a_breach_from_an_allowed_import(
    name: str, importer: str, imported: str, broken: bool
) -> None:
    rule = next(rule for rule in RULES if rule.name == name)
    assert rule.breaks(Import(importer, imported, "example")) is broken


# The runtime check: a process that refuses to import the training stack builds the app, loads
# the model, answers a prediction and imports the server's entry point.
GUARDED_SERVING: Final = textwrap.dedent(
    """
    import importlib.abc, importlib.machinery, sys
    FORBIDDEN = {forbidden!r}

    class Refuse(importlib.abc.Loader):
        def create_module(self, spec):
            raise ImportError(f"serving must not import {{spec.name}}")

        def exec_module(self, module):
            raise ImportError(f"serving must not import {{module.__name__}}")

    class Guard(importlib.abc.MetaPathFinder):
        # Looking a module up (importlib.util.find_spec) is allowed; importing it is not.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                return importlib.machinery.ModuleSpec(name, Refuse())
            return None

    sys.meta_path.insert(0, Guard())
    from pathlib import Path
    from litestar.testing import TestClient
    from serving.app import create_app
    from serving.settings import Settings

    app = create_app(Settings(artifacts_dir=Path({artifacts!r}), access_log=False))
    with TestClient(app) as client:
        response = client.post("/predict", json={patient!r})
        assert response.status_code == 200, response.text
        assert client.get("/model/info").status_code == 200
    import serving.__main__  # the server entry point too
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    assert not loaded, loaded
    print("ok")
    """
)


def test_serving_runs_without_the_training_stack(model_copy: Callable[[str], Path]) -> None:
    artifacts = model_copy("import-guard") / "artifacts"
    script = GUARDED_SERVING.format(
        forbidden=TRAINING_STACK + TRAINING_EXTRAS,
        artifacts=str(artifacts),
        patient=dict(PATIENT),
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
