"""The training CLI, ``python -m training <command>``.

Commands: explore, train, evaluate, optimize, export, full, predict (one process or Dask),
explain, runs, the registry commands list, promote and rollback, ``routing show|set|clear``,
``watch`` and ``mlflow sync``. With ``--mlflow URI`` (or
``MLFLOW_TRACKING_URI``) the training and registry commands also mirror what they do to MLflow.

Every failure the user can fix (a bad CSV, no run yet, a parity failure, an unknown version)
ends with one ``error:`` line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from drugclf.artifact import (
    MAX_LEAF_NODES_RANGE,
    N_ESTIMATORS_RANGE,
    PARITY_CASES_RANGE,
    SEED_RANGE,
    TEST_SIZE_BOUNDS,
    ArtifactError,
    BinningStrategy,
    Metrics,
    Params,
)
from drugclf.contract import CLASSES
from drugclf.registry import Registry, RegistryError
from training import explore as exploration
from training import optimize as optimization
from training.batch.files import DEFAULT_BLOCKSIZE, file_format
from training.dataset import DatasetError, load_dataset, require_trainable
from training.evaluate import CV_FOLDS
from training.explain_csv import explain_csv
from training.gates import GateError
from training.parity import DEFAULT_RANDOM_CASES
from training.routing_cli import add_routing_command
from training.runs import RunError, RunStore
from training.scoring import score_csv
from training.watch import CODE_DIRS, DEBOUNCE_MS, TARGETS
from training.workflow import (
    ParityError,
    TrainedRun,
    evaluate_run,
    export_run,
    git_commit,
    reload,
    train,
)

if TYPE_CHECKING:
    from training.mlflow_mirror import Mirror

EXIT_USER_ERROR = 2
EXIT_PARITY = 3
DEFAULTS = Params()

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


class MirrorError(Exception):
    """``mlflow sync`` cannot reach MLflow, or MLflow refused it."""


def _frame_table(frame: pd.DataFrame, title: str, index: bool = False) -> Table:
    table = Table(title=title, title_justify="left")
    if index:
        table.add_column(str(frame.index.name or ""))
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    floats = [pd.api.types.is_float_dtype(dtype) for dtype in frame.dtypes]
    for label, *values in frame.itertuples(index=True, name=None):
        cells = [f"{v:.4f}" if f else str(v) for v, f in zip(values, floats, strict=True)]
        table.add_row(*([str(label)] if index else []), *cells)
    return table


def _print_metrics(metrics: Metrics) -> None:
    console.print(f"test accuracy: {metrics.test_accuracy:.4f} ({metrics.test_rows} test rows)")
    console.print(
        f"{metrics.cv_folds}-fold CV accuracy: {metrics.cv_accuracy_mean:.4f} "
        f"± {metrics.cv_accuracy_std:.4f}  (one {metrics.test_rows}-row test split is noisy: "
        "one patient moves test accuracy by "
        f"{1 / max(metrics.test_rows, 1):.1%}; compare models by CV)"
    )
    report = pd.DataFrame(
        {
            name: {"precision": r.precision, "recall": r.recall, "f1": r.f1, "support": r.support}
            for name, r in metrics.per_class.items()
        }
    ).T
    report.index.name = "class"
    report["support"] = report["support"].astype(int)
    console.print(_frame_table(report, "per-class report (test split)", index=True))
    console.print(f"macro F1 {metrics.macro_f1:.4f}, weighted F1 {metrics.weighted_f1:.4f}")
    matrix = pd.DataFrame(metrics.confusion_matrix, index=list(CLASSES), columns=list(CLASSES))
    matrix.index.name = "true \\ predicted"
    console.print(_frame_table(matrix, "confusion matrix (test split)", index=True))


def _params(args: argparse.Namespace) -> Params:
    return Params(
        n_estimators=args.n_estimators,
        max_leaf_nodes=args.max_leaf_nodes,
        binning=args.binning,
        smote=args.smote,
        test_size=args.test_size,
        random_state=args.seed,
    )


def _store(args: argparse.Namespace) -> RunStore:
    return RunStore(Path(args.runs_dir))


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(Path(args.artifacts_dir))


def _mirror(args: argparse.Namespace) -> Mirror | None:
    """The MLflow mirror when a tracking URI is given and answers (mlflow is imported only then)."""
    uri = getattr(args, "mlflow", None)
    if not uri:
        return None
    # Each command connects once (`full` too: it mirrors in cmd_export only).
    try:
        from training.mlflow_mirror import Mirror  # noqa: PLC0415 (the optional extra)
    except ImportError as exc:
        errors.print(f"warning: MLflow ({uri}) not mirrored: {exc} (make install)")
        return None
    mirror = Mirror.connect(uri)
    if mirror is not None:
        console.print(f"mirroring to MLflow at {uri}")
    return mirror


def _mirror_run(args: argparse.Namespace, run: TrainedRun) -> None:
    if (mirror := _mirror(args)) is not None:
        mirror.record(run.record, git_commit())


def _mirror_aliases(args: argparse.Namespace, registry: Registry) -> None:
    if (mirror := _mirror(args)) is not None:
        from training.mlflow_mirror import traffic_candidates  # noqa: PLC0415

        mirror.point_aliases(registry.current_version(), traffic_candidates(registry))


def cmd_explore(args: argparse.Namespace) -> None:
    """Describe the dataset."""
    dataset = load_dataset(Path(args.data))
    result = exploration.explore(dataset)
    console.print(f"{dataset.path}: {result.shape[0]} rows × {result.shape[1]} columns")
    console.print(f"sha256 {dataset.sha256}")
    console.print(_frame_table(result.columns, "columns", index=True))
    console.print(_frame_table(result.numeric, "numeric features", index=True))
    console.print(_frame_table(result.categorical, "categorical features"))
    if not result.classes.empty:
        console.print(_frame_table(result.classes, "class distribution", index=True))


def cmd_train(args: argparse.Namespace) -> None:
    """Fit and record a run."""
    with console.status("training..."):
        run = train(Path(args.data), _params(args), _store(args))
    console.print(f"run {run.record.run_id}: {run.record.params}")
    console.print(f"test accuracy: {run.record.test_accuracy:.4f}")
    _mirror_run(args, run)


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Full evaluation of a run."""
    store = _store(args)
    with console.status("evaluating (5-fold cross-validation)..."):
        run = evaluate_run(reload(store, args.run), store)
    console.print(f"run {run.record.run_id}: {run.record.params}")
    assert run.record.metrics is not None
    _print_metrics(run.record.metrics)
    _mirror_run(args, run)


def cmd_export(args: argparse.Namespace) -> None:
    """Export a run behind the parity gate."""
    store = _store(args)
    run = reload(store, args.run)
    with console.status("exporting to ONNX and checking parity..."):
        result = export_run(
            run,
            store,
            _registry(args),
            random_cases=args.parity_cases,
            promote=not args.no_promote,
        )
    metrics = result.metadata.metrics
    console.print(
        f"test accuracy: {metrics.test_accuracy:.4f}, {metrics.cv_folds}-fold CV accuracy: "
        f"{metrics.cv_accuracy_mean:.4f} ± {metrics.cv_accuracy_std:.4f}"
    )
    console.print(result.parity.describe())
    groups = ", ".join(f"{k} {v}" for k, v in result.parity.summary.groups.items())
    console.print(f"parity cases: {groups}")
    if result.explanations is not None:
        console.print(result.explanations.describe())
    else:
        skipped = result.metadata.explanations_skipped
        console.print(f"explanations: none ({skipped})" if skipped else "explanations: none")
    state = "promoted to current" if result.promoted else "published, not promoted"
    console.print(f"exported {result.version} to {result.path} ({state})")
    if (mirror := _mirror(args)) is not None:
        mirror.record(run.record, result.metadata.git_commit)
        mirror.export(run.record, result.path, result.promoted)


def cmd_full(args: argparse.Namespace) -> None:
    """Train, evaluate and export in one go."""
    store = _store(args)
    started = time.perf_counter()
    with console.status("training..."):
        run = train(Path(args.data), _params(args), store)
    console.print(f"run {run.record.run_id}: {run.record.params}")
    with console.status("evaluating (5-fold cross-validation)..."):
        run = evaluate_run(run, store)
    assert run.record.metrics is not None
    _print_metrics(run.record.metrics)
    args.run = run.record.run_id
    cmd_export(args)
    console.print(f"done in {time.perf_counter() - started:.1f} s")


def cmd_optimize(args: argparse.Namespace) -> None:
    """Cross-validated search."""
    dataset = load_dataset(Path(args.data))
    require_trainable(dataset, CV_FOLDS)
    assert dataset.labels is not None
    candidates = optimization.grid(
        n_estimators=args.grid_n_estimators,
        max_leaf_nodes=args.grid_max_leaf_nodes,
        strategies=args.grid_binning,
    )
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*Progress.get_default_columns()[:1], *columns, console=console) as progress:
        task = progress.add_task("cross-validating", total=len(candidates))
        table = optimization.search(
            candidates, dataset.features, dataset.labels, lambda _: progress.advance(task)
        )
    console.print(_frame_table(table.head(args.top), f"top {args.top} of {len(table)} (5-fold CV)"))
    summary = table.groupby(["binning", "smote"], as_index=False).first()
    console.print(_frame_table(summary, "best per binning strategy and SMOTE choice"))
    best = optimization.best_params(table)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "optimize.csv", index=False)
    optimization.plot(table, out / "optimize.png")
    (out / "best_params.json").write_text(
        __import__("msgspec").json.encode(best).decode() + "\n", encoding="utf-8"
    )
    if (mirror := _mirror(args)) is not None:
        mirror.optimize(table.to_dict("records"), dataset.sha256, out)
    console.print(f"best: {best}")
    console.print(
        f"results: {out / 'optimize.csv'}, plot: {out / 'optimize.png'}, "
        f"best params: {out / 'best_params.json'}"
    )


def cmd_predict(args: argparse.Namespace) -> None:
    """Score a CSV or Parquet file with the current (or a given) exported model."""
    registry = _registry(args)
    folder = registry.version_dir(args.version) if args.version else registry.resolve_current()
    for path in (args.input, args.output):
        file_format(Path(path))  # before a cluster starts
    if args.engine == "dask":
        _predict_with_dask(args, folder)
        return
    if args.scheduler is not None:
        raise DatasetError("--scheduler needs --engine dask")
    started = time.perf_counter()
    result = score_csv(folder, Path(args.input), Path(args.output))
    seconds = time.perf_counter() - started
    console.print(
        f"scored {len(result)} rows with {folder.name} -> {args.output} "
        f"in {seconds:.1f} s ({len(result) / seconds:,.0f} rows/s)"
    )


def _predict_with_dask(args: argparse.Namespace, folder: Path) -> None:
    """``predict --engine dask``: partitions on a local cluster or the one at --scheduler."""
    try:
        from training.batch.engine import (  # noqa: PLC0415 (the optional batch extra)
            SchedulerError,
            dask_client,
            score_with_dask,
        )
    except ImportError as exc:
        errors.print(
            f"error: --engine dask needs the `batch` extra ({exc.name} is not installed): "
            "pip install 'drug-classifier[batch]'"
        )
        raise SystemExit(EXIT_USER_ERROR) from None
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with dask_client(args.scheduler, args.workers) as client:
            workers = _count(len(client.scheduler_info()["workers"]), "Dask worker")
            with Progress(*Progress.get_default_columns()[:1], *columns, console=console) as bar:
                task = bar.add_task(f"scoring on {workers}", total=None)
                report = score_with_dask(
                    client,
                    folder,
                    Path(args.input),
                    Path(args.output),
                    blocksize=args.blocksize,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
    except SchedulerError as exc:
        errors.print(f"error: {exc}")
        raise SystemExit(EXIT_USER_ERROR) from None
    console.print(
        f"scored {report.rows} rows with {folder.name} -> {args.output}: "
        f"{_count(report.partitions, 'partition')} on {_count(len(report.sessions), 'worker')} "
        f"(one model session each) in {report.seconds:.1f} s "
        f"({report.rows / report.seconds:,.0f} rows/s)"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def cmd_explain(args: argparse.Namespace) -> None:
    """Explain a CSV with the current (or a given) exported model's exact Shapley values."""
    registry = _registry(args)
    folder = registry.version_dir(args.version) if args.version else registry.resolve_current()
    result = explain_csv(folder, Path(args.input), Path(args.output))
    console.print(f"explained {len(result)} rows with {folder.name} -> {args.output}")


def cmd_runs(args: argparse.Namespace) -> None:
    """List runs."""
    rows = []
    for record in _store(args).all():
        m = record.metrics
        rows.append(
            {
                "run": record.run_id,
                "binning": record.params.binning,
                "smote": record.params.smote,
                "n_est": record.params.n_estimators,
                "leaves": record.params.max_leaf_nodes,
                "test_acc": record.test_accuracy,
                "cv_acc": m.cv_accuracy_mean if m else float("nan"),
                "data": record.data_sha256[:12],
                "version": record.exported_version or "-",
            }
        )
    if not rows:
        console.print(f"no runs in {args.runs_dir}")
        return
    console.print(_frame_table(pd.DataFrame(rows), "training runs"))


def cmd_list(args: argparse.Namespace) -> None:
    """List published versions."""
    versions = _registry(args).list_versions()
    if not versions:
        console.print(f"no versions in {args.artifacts_dir}")
        return
    rows = [
        {
            "version": v.version,
            "current": "*" if v.current else "",
            "binning": v.metadata.params.binning,
            "test_acc": v.metadata.metrics.test_accuracy,
            "cv_acc": v.metadata.metrics.cv_accuracy_mean,
            "parity_cases": v.metadata.parity.cases,
            "data": v.metadata.data_sha256[:12],
        }
        for v in versions
    ]
    console.print(_frame_table(pd.DataFrame(rows), "model versions"))


def cmd_promote(args: argparse.Namespace) -> None:
    """Serve a given version."""
    registry = _registry(args)
    registry.promote(args.version)
    console.print(f"current -> {args.version}")
    _mirror_aliases(args, registry)


def cmd_rollback(args: argparse.Namespace) -> None:
    """Serve the previously promoted version."""
    registry = _registry(args)
    version = registry.rollback()
    console.print(f"current -> {version}")
    _mirror_aliases(args, registry)


def cmd_watch(args: argparse.Namespace) -> None:
    """Rerun the pipeline on each change of the data or the training code."""
    from training.watch import WatchPlan, watch_and_run  # noqa: PLC0415

    if importlib.util.find_spec("watchfiles") is None:
        raise RunError("watch needs the watch extra (watchfiles): make install")
    plan = WatchPlan(
        target=args.target,
        data=Path(args.data),
        runs_dir=Path(args.runs_dir),
        artifacts_dir=Path(args.artifacts_dir),
        code_dirs=tuple(args.code),
        pipeline_args=tuple(args.pipeline_args),
        debounce_ms=args.debounce_ms,
        mlflow=args.mlflow,
    )
    # A folder that is not there would be watched silently for ever (a typo in --code, say).
    if missing := [p for p in (plan.data.resolve().parent, *plan.code_dirs) if not p.is_dir()]:
        raise RunError(f"watch: no such folder: {', '.join(str(p) for p in missing)}")
    watch_and_run(plan, lambda line: console.print(line, soft_wrap=True, markup=False))


def cmd_mlflow_sync(args: argparse.Namespace) -> None:
    """Register the published versions MLflow lacks; champion follows current."""
    if not args.mlflow:
        raise MirrorError("no MLflow to sync with: set MLFLOW_TRACKING_URI or pass --mlflow URI")
    mirror = _mirror(args)
    if mirror is None:
        raise MirrorError(f"MLflow at {args.mlflow} is not available (see the warning above)")
    registry = _registry(args)
    try:
        added = mirror.sync(registry, _store(args).all())
    except (RunError, RegistryError, ArtifactError):
        raise
    except Exception as exc:  # MLflow's own errors: what it said, without a traceback
        raise MirrorError(f"MLflow at {args.mlflow}: {exc}") from exc
    console.print(f"registered in MLflow: {', '.join(added) or 'nothing new'}")
    console.print(f"champion -> {registry.current_version() or 'nothing (no current version)'}")


def _positive_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return parse


def _test_size(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    low, high = TEST_SIZE_BOUNDS
    if not low < value < high:
        raise argparse.ArgumentTypeError(f"{value} must be strictly between {low} and {high}")
    return value


def _add_explain(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "explain", parents=[common], help="exact Shapley values of a CSV's rows (offline)"
    )
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--version", help="model version (default: current)")
    p.set_defaults(func=cmd_explain)


def _add_predict(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "predict", parents=[common], help="score a CSV or Parquet file with the exported model"
    )
    p.add_argument("--input", required=True, help="CSV or Parquet (.csv, .parquet, .pq)")
    p.add_argument("--output", required=True, help="CSV or Parquet, by suffix")
    p.add_argument("--version", help="model version (default: current)")
    p.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local: one process, the file in memory; dask: partitions on a Dask cluster "
        "(the batch extra), for files larger than memory",
    )
    p.add_argument(
        "--scheduler", help="address of an existing Dask scheduler (default: a local cluster)"
    )
    p.add_argument(
        "--workers",
        type=_positive_int(1, 1024),
        help="worker processes of the local Dask cluster (default: one per CPU)",
    )
    p.add_argument(
        "--blocksize",
        type=_positive_int(1024, 1 << 34),
        default=DEFAULT_BLOCKSIZE,
        help="bytes of CSV per Dask partition (Parquet: one per row group)",
    )
    p.set_defaults(func=cmd_predict)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    env = os.environ.get
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--runs-dir", default=env("DRUGCLF_RUNS_DIR", "runs"), help="training runs folder"
    )
    common.add_argument(
        "--artifacts-dir",
        default=env("DRUGCLF_ARTIFACTS_DIR", "artifacts"),
        help="model registry folder",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument(
        "--data", default=env("DRUGCLF_DATA", "data/drug200.csv"), help="CSV in the drug200 schema"
    )
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument(
        "--n-estimators", type=_positive_int(*N_ESTIMATORS_RANGE), default=DEFAULTS.n_estimators
    )
    model.add_argument(
        "--max-leaf-nodes",
        type=_positive_int(*MAX_LEAF_NODES_RANGE),
        default=DEFAULTS.max_leaf_nodes,
    )
    model.add_argument("--binning", choices=get_args(BinningStrategy), default=DEFAULTS.binning)
    model.add_argument("--smote", action=argparse.BooleanOptionalAction, default=DEFAULTS.smote)
    model.add_argument("--test-size", type=_test_size, default=DEFAULTS.test_size)
    model.add_argument("--seed", type=_positive_int(*SEED_RANGE), default=DEFAULTS.random_state)
    export = argparse.ArgumentParser(add_help=False)
    export.add_argument(
        "--parity-cases",
        type=_positive_int(*PARITY_CASES_RANGE),
        default=DEFAULT_RANDOM_CASES,
        help="random patients in the parity gate",
    )
    export.add_argument(
        "--no-promote", action="store_true", help="publish without making it current"
    )

    tracking = _tracking_options()
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("explore", parents=[common, data], help="describe the dataset").set_defaults(
        func=cmd_explore
    )
    sub.add_parser(
        "train", parents=[common, data, model, tracking], help="fit and record a run"
    ).set_defaults(func=cmd_train)
    p = sub.add_parser(
        "evaluate", parents=[common, tracking], help="evaluate a run (default: the last)"
    )
    p.add_argument("--run", help="run id")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser(
        "export",
        parents=[common, export, tracking],
        help="export a run to ONNX behind the parity gate",
    )
    p.add_argument("--run", help="run id (default: the last)")
    p.set_defaults(func=cmd_export)
    sub.add_parser(
        "full", parents=[common, data, model, export, tracking], help="train + evaluate + export"
    ).set_defaults(func=cmd_full, run=None)
    p = sub.add_parser(
        "optimize", parents=[common, data, tracking], help="cross-validated hyperparameter search"
    )
    p.add_argument(
        "--grid-n-estimators",
        type=_positive_int(*N_ESTIMATORS_RANGE),
        nargs="+",
        default=list(optimization.N_ESTIMATORS),
    )
    p.add_argument(
        "--grid-max-leaf-nodes",
        type=_positive_int(*MAX_LEAF_NODES_RANGE),
        nargs="+",
        default=list(optimization.MAX_LEAF_NODES),
    )
    p.add_argument(
        "--grid-binning",
        nargs="+",
        choices=get_args(BinningStrategy),
        default=list(optimization.STRATEGIES),
    )
    p.add_argument("--top", type=_positive_int(1, 1000), default=10)
    p.add_argument("--output", default="reports/optimize")
    p.set_defaults(func=cmd_optimize)
    _add_predict(sub, common)
    _add_explain(sub, common)
    sub.add_parser("runs", parents=[common], help="list training runs").set_defaults(func=cmd_runs)
    sub.add_parser("list", parents=[common], help="list model versions").set_defaults(func=cmd_list)
    p = sub.add_parser("promote", parents=[common, tracking], help="serve a version")
    p.add_argument("version")
    p.set_defaults(func=cmd_promote)
    sub.add_parser(
        "rollback", parents=[common, tracking], help="serve the previous version"
    ).set_defaults(func=cmd_rollback)
    _add_mlops_commands(sub, [common, data, tracking])
    add_routing_command(sub, [common])
    return parser


def _tracking_options() -> argparse.ArgumentParser:
    tracking = argparse.ArgumentParser(add_help=False)
    tracking.add_argument(
        "--mlflow",
        metavar="URI",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="also mirror to this MLflow tracking server (default: $MLFLOW_TRACKING_URI)",
    )
    return tracking


def _add_mlops_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    """``watch`` and ``mlflow sync``; ``parents`` are the common, data and tracking options."""
    common, _, tracking = parents
    p = sub.add_parser(
        "watch",
        parents=parents,
        help="rerun the pipeline when the data or the training code changes",
        description="Options after `--` go to the pipeline command, e.g. -- --n-estimators 20.",
    )
    p.add_argument("--target", choices=TARGETS, default="full", help="the command to rerun")
    p.add_argument(
        "--code",
        nargs="+",
        type=Path,
        default=list(CODE_DIRS),
        help="code folders whose Python files trigger a run",
    )
    p.add_argument("--debounce-ms", type=_positive_int(50, 60_000), default=DEBOUNCE_MS)
    p.add_argument("pipeline_args", nargs="*", help="after --: options of the pipeline command")
    p.set_defaults(func=cmd_watch)
    p = sub.add_parser("mlflow", help="the MLflow mirror")
    mlflow_sub = p.add_subparsers(dest="mlflow_command", required=True)
    mlflow_sub.add_parser(
        "sync",
        parents=[common, tracking],
        help="register the published versions MLflow lacks; move champion to current",
    ).set_defaults(func=cmd_mlflow_sync)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.func(args)
    except (ParityError, GateError) as exc:
        errors.print(f"error: export refused, nothing published.\n{exc}")
        return EXIT_PARITY
    except (DatasetError, RunError, RegistryError, ArtifactError, MirrorError) as exc:
        errors.print(f"error: {exc}")
        return EXIT_USER_ERROR
    except OSError as exc:  # an output or registry path that cannot be written
        where = f"{exc.filename}: " if exc.filename else ""
        errors.print(f"error: {where}{exc.strerror or exc}")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
