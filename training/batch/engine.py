"""Score a file on a Dask cluster: partitions stream through one onnxruntime session per worker.

The model travels once to each worker inside a worker plugin, which builds the session when
the worker starts (``setup``); every partition that worker runs uses it. Each partition reads
its slice of the input, validates it as the single-process path does, and writes its scored
rows as a part file beside the output; the client then joins the parts in order. A file with
any bad row writes nothing: the parts are deleted and the problems reported by line and column.

The input and the output's folder must be reachable at the same path by every worker (a local
cluster, by default, or a cluster on a shared filesystem), as for ``dask.dataframe.read_csv``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import onnxruntime as ort
from distributed import Client, LocalCluster, as_completed, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from drugclf.artifact import ArtifactMetadata, read_metadata, read_model
from training.batch.files import (
    DEFAULT_BLOCKSIZE,
    FileFormat,
    Partition,
    file_format,
    join_parts,
    part_path,
    plan,
    read_partition,
    shifted,
    staging_folder,
    write_frame,
)
from training.dataset import DatasetError, Problem, summarise_problems
from training.scoring import new_session, scored_frame

logger = logging.getLogger(__name__)

PLUGIN_NAME: Final = "drugclf-model"


class SchedulerError(Exception):
    """The Dask scheduler at the given address cannot be reached."""


class ModelPlugin(WorkerPlugin):
    """Holds the model's session on a worker: built once, when the plugin is set up there."""

    def __init__(self, model: bytes, meta: ArtifactMetadata) -> None:
        self.model = model
        self.meta = meta
        self.sessions_built = 0
        self.session: ort.InferenceSession | None = None

    def setup(self, worker: object) -> None:
        """Build this worker's session (one thread: each worker process has a core)."""
        self.session = new_session(self.model)
        self.sessions_built += 1
        logger.info("model %s loaded on worker pid %d", self.meta.version, os.getpid())


@dataclass(frozen=True)
class PartitionResult:
    """What a partition did: rows, lines of the file it covered, problems, who scored it."""

    index: int
    rows: int
    lines: int
    problems: list[Problem]
    problem_count: int
    error: str | None
    worker_pid: int
    session_id: int
    sessions_built: int


def score_partition(
    partition: Partition, columns: list[str], staging: str, out_format: FileFormat
) -> PartitionResult:
    """Validate one partition and, when every row is valid, write its scored rows (worker side)."""
    plugin = get_worker().plugins[PLUGIN_NAME]
    assert isinstance(plugin, ModelPlugin)
    who = (os.getpid(), id(plugin.session), plugin.sessions_built)
    try:
        rows = read_partition(partition, columns)
    except DatasetError as exc:
        return PartitionResult(partition.index, 0, 0, [], 1, str(exc), *who)
    parsed = rows.parsed
    if parsed.features is not None and parsed.rows:
        frame = scored_frame(plugin.session, plugin.meta, parsed.features, parsed.labels)
        write_frame(
            frame,
            part_path(Path(staging), partition.index, out_format),
            out_format,
            header=partition.index == 0,
        )
    return PartitionResult(
        partition.index, parsed.rows, rows.lines, parsed.problems, parsed.problem_count, None, *who
    )


@dataclass
class BatchReport:
    """A finished run: rows scored, partitions, and the session each worker process used."""

    rows: int
    partitions: int
    seconds: float
    sessions: dict[int, set[int]] = field(default_factory=dict)
    sessions_built: dict[int, int] = field(default_factory=dict)


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None, workers: int | None = None, *, connect_timeout: float = 10.0
) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, or of a new local cluster.

    The local cluster has ``workers`` processes (default: one per CPU this process may use),
    one thread each, and no dashboard. ``connect_timeout``: seconds to reach ``scheduler``.

    Raises:
        SchedulerError: nothing answers at ``scheduler``.
    """
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        with client:
            yield client
        return
    count = workers or len(os.sched_getaffinity(0))
    # The scheduler runs in this process and tells of every worker it meets: only when asked.
    if not logger.isEnabledFor(logging.INFO):
        logging.getLogger("distributed").setLevel(logging.WARNING)
    with (
        LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # No dashboard (the CLI has its own progress bar); the scheduler's HTTP server
            # (health, metrics) starts anyway: on a free port, not on 8787.
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def score_with_dask(
    client: Client,
    model_dir: Path,
    input_path: Path,
    output_path: Path,
    *,
    blocksize: int = DEFAULT_BLOCKSIZE,
    progress: Callable[[int, int], None] | None = None,
) -> BatchReport:
    """Score ``input_path`` into ``output_path`` on the cluster ``client`` talks to.

    Args:
        client: a Dask client (``dask_client``).
        model_dir: the exported version to score with.
        input_path: CSV or Parquet, by suffix.
        output_path: CSV or Parquet, by suffix; written whole or not at all.
        blocksize: bytes of CSV per partition (Parquet: one partition per row group).
        progress: called with (partitions done, partitions) as they finish.

    Raises:
        DatasetError: the input is invalid (every problem by line and column) or unreadable.
    """
    started = time.perf_counter()
    out_format = file_format(output_path)
    meta = read_metadata(model_dir)
    model = read_model(model_dir, meta)
    layout = plan(input_path, blocksize)
    client.register_plugin(ModelPlugin(model, meta), name=PLUGIN_NAME)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(output_path)
    try:
        futures = client.map(
            score_partition,
            layout.partitions,
            columns=layout.columns,
            staging=str(staging),
            out_format=out_format,
            pure=False,
        )
        results: list[PartitionResult] = []
        for future in as_completed(futures):
            results.append(future.result())
            if progress is not None:
                progress(len(results), len(futures))
        results.sort(key=lambda r: r.index)
        _raise_on_problems(input_path, results)
        parts = [part_path(staging, r.index, out_format) for r in results]
        join_parts(parts, output_path, out_format, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report = BatchReport(
        rows=sum(r.rows for r in results),
        partitions=len(results),
        seconds=time.perf_counter() - started,
    )
    for r in results:
        report.sessions.setdefault(r.worker_pid, set()).add(r.session_id)
        report.sessions_built[r.worker_pid] = r.sessions_built
    logger.info("scored %d rows in %d partitions", report.rows, report.partitions)
    return report


def _raise_on_problems(path: Path, results: list[PartitionResult]) -> None:
    for result in results:
        if result.error is not None:
            raise DatasetError(result.error)
    problems: list[Problem] = []
    lines_before = 1  # the header
    for result in results:
        problems += [shifted(p, lines_before) for p in result.problems]
        lines_before += result.lines
    count = sum(r.problem_count for r in results)
    if count:
        raise DatasetError(summarise_problems(path, problems, count))
    if sum(r.rows for r in results) == 0:
        raise DatasetError(f"{path}: the file has a header but no data rows")
