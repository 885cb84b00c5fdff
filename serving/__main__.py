"""``python -m serving``: check the artifact, then run the ASGI server with one worker per core.

Settings come from ``DRUGCLF_*`` environment variables (see ``serving.settings``). A missing,
corrupt or mismatched model stops the start with one log line and exit status 2, before any
worker exists: never a server that answers 500 later.
"""

# Imports are deferred on purpose: prometheus_client must see PROMETHEUS_MULTIPROC_DIR at import,
# and uvicorn exists only in the dev group.
# ruff: noqa: PLC0415
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from serving.settings import Settings

EXIT_BAD_CONFIG: Final = 2
logger = logging.getLogger("serving")


def main() -> int:
    """Run the server until interrupted; returns the process exit status."""
    from serving.http import logs
    from serving.settings import OrtThreads, Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        logs.configure()
        logger.error("cannot start: %s", exc)
        return EXIT_BAD_CONFIG
    logs.configure(settings.log_level, settings.log_format)
    if settings.event_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        logger.error(
            "cannot start: DRUGCLF_EVENT_LOOP is uvloop but uvloop is not installed "
            "(install the serve extra, or set DRUGCLF_EVENT_LOOP=asyncio)"
        )
        return EXIT_BAD_CONFIG
    workers = settings.worker_count()
    metrics_dir = _share_metrics_between(workers)
    try:
        # Imported after the metrics directory is set: prometheus_client reads it at import.
        from drugclf.artifact import ArtifactError
        from drugclf.registry import Registry
        from serving.inference.model import DrugModel

        try:
            model = DrugModel.load(
                Registry(settings.artifacts_dir).resolve_current(),
                # One session is proof enough here; each worker loads its own sessions.
                threads=OrtThreads(per_call=settings.ort_intra_op_threads),
            )
        except ArtifactError as exc:
            logger.error("cannot start: %s", exc)
            return EXIT_BAD_CONFIG
        logger.info(
            "starting %s on http://%s:%d with %d worker(s), model %s",
            settings.server,
            settings.host,
            settings.port,
            workers,
            model.version,
            extra={"model_version": model.version},
        )
        del model
        _run(settings, workers)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _share_metrics_between(workers: int) -> str | None:
    """With several workers, let Prometheus sum every worker's samples (multiprocess mode)."""
    if workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    path = tempfile.mkdtemp(prefix="drugclf-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def _run(settings: Settings, workers: int) -> None:
    from serving.http import logs

    target = settings.app_factory
    if settings.server == "uvicorn":
        import uvicorn  # only in the dev group: used to compare against granian

        uvicorn.run(
            target,
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            loop=settings.event_loop,
            log_config=None,
            access_log=False,
            timeout_keep_alive=max(1, round(settings.keep_alive_timeout)),
            log_level=settings.log_level.lower(),
        )
        return
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    Server(
        target,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        loop=Loops(settings.event_loop),
        workers=workers,
        factory=True,
        log_level=LogLevels.warning,
        log_dictconfig=logs.dict_config(settings.log_level, settings.log_format),
        backlog=2048,
        # hyper's header read timeout also closes idle keep-alive connections.
        http1_settings=HTTP1Settings(header_read_timeout=round(settings.keep_alive_timeout * 1000)),
        # A worker that dies (OOM killer, a crash in native code) is replaced while the others
        # keep answering; without this, granian's main process exits and takes them all down.
        respawn_failed_workers=True,
    ).serve()


if __name__ == "__main__":
    sys.exit(main())
