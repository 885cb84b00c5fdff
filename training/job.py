"""The training side of a server retrain job: validate the data, train, evaluate, export.

It runs in a process of its own that the server starts (``serving.lifecycle.jobs``), reports through
``emit`` (see ``drugclf.retrain``) and never promotes: the server decides that, because only it
knows the model being served and whether the client forced the promotion.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from drugclf.registry import Registry
from drugclf.retrain import Failed, JobEvent, JobSpec, Published, Validated
from training.dataset import Dataset, DatasetError, load_dataset, parse_csv

logger = logging.getLogger(__name__)

Emit = Callable[[JobEvent], None]


def store_upload(spec: JobSpec) -> tuple[Path, Dataset]:
    """Validate the uploaded CSV and keep it as ``<sha256>.csv`` so the run can be repeated.

    Raises:
        DatasetError: the file is not a valid dataset; its message names lines and columns.
    """
    assert spec.upload_path is not None
    upload = Path(spec.upload_path)
    raw = upload.read_bytes()
    dataset = parse_csv(raw, Path(spec.upload_name or "upload.csv"))
    target = Path(spec.datasets_dir) / f"{dataset.sha256}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        upload.unlink(missing_ok=True)
    else:
        os.replace(upload, target)
    return target, dataset


def run_job(spec: JobSpec, emit: Emit) -> None:
    """Validate, train, evaluate and export (parity-gated, not promoted), emitting progress."""
    if spec.upload_path is not None:
        try:
            data_path, dataset = store_upload(spec)
        except DatasetError as exc:
            emit(Failed(code="dataset_invalid", message=str(exc)))
            return
    else:
        data_path = Path(spec.data_path)
        try:
            dataset = load_dataset(data_path)
        except DatasetError as exc:
            logger.error("the server's dataset is unusable: %s", exc)
            emit(
                Failed(
                    code="dataset_unavailable",
                    message="the server's default dataset cannot be used; upload a CSV",
                )
            )
            return
    emit(Validated(data_sha256=dataset.sha256, data_rows=dataset.rows))

    # Imported only now: scikit-learn and skl2onnx take seconds to import, and the client of a
    # bad upload should not wait for them to hear about it.
    from training.gates import GateError  # noqa: PLC0415
    from training.runs import RunStore  # noqa: PLC0415
    from training.workflow import ParityError, evaluate_run, export_run, train  # noqa: PLC0415

    store = RunStore(Path(spec.runs_dir))
    try:
        run = train(data_path, spec.params, store)
    except DatasetError as exc:  # e.g. too few rows of a class to split
        emit(Failed(code="dataset_invalid", message=_client_message(str(exc), data_path)))
        return
    run = evaluate_run(run, store)
    try:
        result = export_run(
            run,
            store,
            Registry(Path(spec.artifacts_dir)),
            random_cases=spec.parity_cases,
            promote=False,
        )
    except ParityError as exc:
        logger.error("parity gate failed: %s", exc)
        summary = exc.report.summary
        emit(
            Failed(
                code="parity_failed",
                message=(
                    f"the parity gate failed: {summary.mismatches} of {summary.cases} cases "
                    "differ between ONNX and scikit-learn; nothing was published"
                ),
                parity=summary,
            )
        )
        return
    except GateError as exc:  # the explainer's or the cell table's
        logger.error("%s gate failed: %s", exc.gate_name, exc)
        emit(
            Failed(
                code="parity_failed",
                message=(
                    f"the {exc.gate_name} gate failed ({exc.report.line}); nothing was published"
                ),
            )
        )
        return
    metrics = run.record.metrics
    assert metrics is not None
    emit(
        Published(
            version=result.version,
            run_id=run.record.run_id,
            metrics=metrics,
            parity=result.parity.summary,
        )
    )


def _client_message(message: str, data_path: Path) -> str:
    """Training messages name the stored file; the client knows it by its sha256 only."""
    return message.replace(str(data_path), data_path.name)
