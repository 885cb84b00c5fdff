"""``make watch``: run the pipeline again whenever the data or the training code changes.

Each run is a fresh ``python -m training <target>`` process, so a change to the training code
takes effect without restarting the watcher, and a failed run (a half-written CSV, a syntax
error) leaves the watcher waiting for the next change. Changes are debounced by watchfiles:
an editor's burst of writes is one run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from training.runs import RunError, RunStore

if TYPE_CHECKING:
    from watchfiles import Change

WatchTarget = Literal["full", "train"]
TARGETS: Final[tuple[WatchTarget, ...]] = ("full", "train")
PACKAGE_ROOT: Final = Path(__file__).resolve().parents[1]
CODE_DIRS: Final = (PACKAGE_ROOT / "training", PACKAGE_ROOT / "drugclf")
DEBOUNCE_MS: Final = 1600


@dataclass(frozen=True)
class WatchPlan:
    """What to watch and what to run on a change."""

    target: WatchTarget
    data: Path
    runs_dir: Path
    artifacts_dir: Path
    code_dirs: tuple[Path, ...] = CODE_DIRS
    pipeline_args: tuple[str, ...] = ()
    debounce_ms: int = DEBOUNCE_MS
    mlflow: str | None = None

    @property
    def command(self) -> list[str]:
        """The pipeline command run on each change."""
        command = [sys.executable, "-m", "training", self.target, "--data", str(self.data)]
        command += ["--runs-dir", str(self.runs_dir), "--artifacts-dir", str(self.artifacts_dir)]
        if self.mlflow:
            command += ["--mlflow", self.mlflow]
        return [*command, *self.pipeline_args]

    def watched(self) -> list[Path]:
        """The data file's folder and the code folders (those that exist)."""
        return [p for p in (self.data.resolve().parent, *self.code_dirs) if p.is_dir()]

    def relevant(self, change: Change, path: str) -> bool:
        """A CSV in the data folder, or a Python file in a code folder."""
        del change
        candidate = Path(path)
        if candidate.suffix == ".csv":
            return candidate.parent == self.data.resolve().parent
        return candidate.suffix == ".py" and any(
            candidate.is_relative_to(folder.resolve()) for folder in self.code_dirs
        )


def summary(plan: WatchPlan, seconds: float) -> str:
    """One line on the run just made: accuracy, CV, parity and the exported version."""
    record = RunStore(plan.runs_dir).load()
    metrics, parity = record.metrics, record.parity
    cv = f"{metrics.cv_accuracy_mean:.3f} ± {metrics.cv_accuracy_std:.3f}" if metrics else "-"
    checked = f"{parity.mismatches}/{parity.cases:,} mismatches" if parity else "-"
    return (
        f"{plan.target} ok in {seconds:.1f} s: run {record.run_id}, "
        f"test accuracy {record.test_accuracy:.3f}, CV {cv}, parity {checked}, "
        f"version {record.exported_version or '-'}"
    )


def run_once(plan: WatchPlan) -> str:
    """Run the pipeline once; its summary, or what it said on stderr when it failed."""
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603 (our own CLI, with our own interpreter)
        plan.command,
        capture_output=True,
        text=True,
        check=False,
        cwd=PACKAGE_ROOT,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        said = result.stderr.strip() or result.stdout.strip()[-2000:]
        return f"{plan.target} failed (exit {result.returncode}) in {seconds:.1f} s:\n{said}"
    try:
        return summary(plan, seconds)
    except RunError as exc:
        return f"{plan.target} ran but its run cannot be read: {exc}"


def watch_and_run(plan: WatchPlan, report: Callable[[str], None]) -> None:
    """Run the pipeline on every debounced batch of relevant changes, until interrupted."""
    from watchfiles import watch  # noqa: PLC0415 (the watch extra: only this command needs it)

    folders = ", ".join(str(p) for p in plan.watched())
    ready = False
    # An empty batch each second when nothing changed: the first says the watch is in place,
    # so "watching" is printed only once a change would be seen.
    for batch in watch(
        *plan.watched(),
        watch_filter=plan.relevant,
        debounce=plan.debounce_ms,
        yield_on_timeout=True,
        rust_timeout=1000,
    ):
        if not ready:
            ready = True
            report(f"watching {folders} ({plan.target} on each change; Ctrl-C stops)")
        if not batch:
            continue
        names = ", ".join(sorted({Path(path).name for _, path in batch}))
        report(f"{time.strftime('%H:%M:%S')} changed: {names}")
        report(f"{time.strftime('%H:%M:%S')} {run_once(plan)}")
        report("waiting for the next change")
