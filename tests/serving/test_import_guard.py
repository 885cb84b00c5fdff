"""Serving runs without scikit-learn, pandas or the training package.

A subprocess installs an import hook that refuses those modules, then builds the app, loads the
model and answers a prediction. Any import of them anywhere in serving fails the test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from .conftest import ROOT, Trained

FORBIDDEN = ("sklearn", "pandas", "training", "imblearn", "skl2onnx", "matplotlib", "scipy")

SCRIPT = textwrap.dedent(
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
        body = {{"Age": 45, "Sex": "M", "BP": "HIGH", "Cholesterol": "NORMAL", "Na_to_K": 15.5}}
        response = client.post("/predict", json=body)
        assert response.status_code == 200, response.text
        assert client.get("/model/info").status_code == 200
    import serving.__main__  # the server entry point too
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    assert not loaded, loaded
    print("ok")
    """
)


def test_serving_imports_no_training_stack(trained: Trained) -> None:
    script = SCRIPT.format(forbidden=FORBIDDEN, artifacts=str(trained.artifacts_dir))
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
