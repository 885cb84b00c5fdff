"""Batch scoring on Dask (``training.batch``) against the single-process path.

A real local Dask cluster (two worker processes, as the CLI starts it), a real exported model,
200,000 generated patients.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pandas as pd
import pytest
from distributed import Client

from tests.support import bare_env, training_cli
from tests.training.conftest import Exported
from training.batch.engine import SchedulerError, dask_client, score_with_dask
from training.batch.files import plan
from training.dataset import DatasetError
from training.parity import random_patients
from training.scoring import score_file

pytestmark = pytest.mark.slow

PATIENTS = 200_000
# ~7 MB of CSV in partitions of 256 KiB: about 27 of them, many more than workers.
BLOCKSIZE = 256 << 10
WORKERS = 2


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with dask_client(workers=WORKERS) as dask:
        yield dask


@pytest.fixture(scope="module")
def patients_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("batch") / "patients.csv"
    random_patients(PATIENTS, seed=19).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_dir(exported: Exported) -> Path:
    return exported.registry.resolve_current()


def test_dask_writes_the_single_process_file_row_for_row(
    client: Client, model_dir: Path, patients_csv: Path, tmp_path: Path
) -> None:
    single, dask = tmp_path / "single.csv", tmp_path / "dask.csv"
    score_file(model_dir, patients_csv, single)
    report = score_with_dask(client, model_dir, patients_csv, dask, blocksize=BLOCKSIZE)
    assert report.rows == PATIENTS
    assert dask.read_bytes() == single.read_bytes()
    assert len(pd.read_csv(dask)) == PATIENTS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dask.csv", "single.csv"]


def test_one_model_session_per_worker_process(
    client: Client, model_dir: Path, patients_csv: Path, tmp_path: Path
) -> None:
    progress: list[tuple[int, int]] = []
    report = score_with_dask(
        client,
        model_dir,
        patients_csv,
        tmp_path / "out.csv",
        blocksize=BLOCKSIZE,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert report.partitions > 4 * WORKERS
    assert 1 <= len(report.sessions) <= WORKERS
    # Every partition a worker ran used the same session, built once when it joined.
    assert all(len(ids) == 1 for ids in report.sessions.values()), report.sessions
    assert set(report.sessions_built.values()) == {1}
    assert progress[-1] == (report.partitions, report.partitions)
    assert [done for done, _ in progress] == list(range(1, report.partitions + 1))


def _corrupt_first_line_of(partition: int, source: Path, target: Path) -> tuple[int, str]:
    """Copy ``source`` with the Age of the first line of ``partition`` made invalid."""
    start = plan(source, BLOCKSIZE).partitions[partition].start
    raw = source.read_bytes()
    line_number = raw[:start].count(b"\n") + 1
    end = raw.index(b",", start)
    bad = "x" * (end - start)  # same length: every partition keeps its bytes
    target.write_bytes(raw[:start] + bad.encode() + raw[end:])
    assert plan(target, BLOCKSIZE).partitions[partition].start == start
    return line_number, bad


def test_a_bad_row_in_partition_7_is_reported_by_line_and_nothing_is_written(
    client: Client, model_dir: Path, patients_csv: Path, tmp_path: Path
) -> None:
    bad_csv = tmp_path / "bad.csv"
    line, value = _corrupt_first_line_of(7, patients_csv, bad_csv)
    assert line > PATIENTS // 10  # far from the first partition
    out = tmp_path / "out" / "scored.csv"
    with pytest.raises(DatasetError) as dask_error:
        score_with_dask(client, model_dir, bad_csv, out, blocksize=BLOCKSIZE)
    assert f"line {line}, column Age: '{value}' is not an integer" in str(dask_error.value)
    assert "1 problem" in str(dask_error.value)
    assert list(out.parent.iterdir()) == []  # no output, no parts left behind
    # The single-process path says exactly the same.
    with pytest.raises(DatasetError) as single_error:
        score_file(model_dir, bad_csv, tmp_path / "single.csv")
    assert str(single_error.value) == str(dask_error.value)


def test_an_existing_cluster_is_reached_by_its_address(
    client: Client, model_dir: Path, data_path: Path, tmp_path: Path
) -> None:
    address = client.scheduler_info()["address"]
    with dask_client(address) as other:
        report = score_with_dask(other, model_dir, data_path, tmp_path / "out.csv", blocksize=2048)
    assert report.rows == 200
    assert report.partitions > 1


def test_a_header_without_rows_is_refused_as_in_one_process(
    client: Client, model_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "empty.csv"
    source.write_text("Age,Sex,BP,Cholesterol,Na_to_K\n")
    with pytest.raises(DatasetError, match="the file has a header but no data rows"):
        score_with_dask(client, model_dir, source, tmp_path / "out" / "o.csv")
    with pytest.raises(DatasetError, match="the file has a header but no data rows"):
        score_file(model_dir, source, tmp_path / "out" / "o.csv")
    assert list((tmp_path / "out").iterdir()) == []


def test_parquet_in_and_out_matches_the_single_process_path(
    client: Client, model_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "patients.parquet"
    random_patients(20_000, seed=7).to_parquet(source, index=False, row_group_size=1_500)
    single, dask = tmp_path / "single.parquet", tmp_path / "dask.parquet"
    score_file(model_dir, source, single)
    report = score_with_dask(client, model_dir, source, dask)
    assert report.partitions == 14  # one per row group
    pd.testing.assert_frame_equal(pd.read_parquet(dask), pd.read_parquet(single))


def test_a_bad_parquet_row_is_reported_with_its_csv_line(
    client: Client, model_dir: Path, tmp_path: Path
) -> None:
    frame = random_patients(3_000, seed=3)
    frame.loc[2_500, "BP"] = "VERY HIGH"
    source = tmp_path / "bad.parquet"
    frame.to_parquet(source, index=False, row_group_size=1_000)
    with pytest.raises(DatasetError, match=r"line 2502, column BP: 'VERY HIGH' is not one of"):
        score_with_dask(client, model_dir, source, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def _predict(exported: Exported, *args: str) -> subprocess.CompletedProcess[str]:
    return training_cli(exported.registry.root.parent, "predict", *args)


def test_cli_scores_on_a_local_cluster_with_a_progress_bar(
    exported: Exported, data_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scored.parquet"
    done = _predict(
        exported,
        *("--input", str(data_path), "--output", str(out)),
        *("--engine", "dask", "--workers", "1", "--blocksize", "2048"),
    )
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())  # the console wraps long lines
    assert "scoring on 1 Dask worker " in said
    assert "scored 200 rows" in said
    assert "partitions on 1 worker (one model session each)" in said
    assert len(pd.read_parquet(out)) == 200


@pytest.mark.parametrize(
    ("args", "output", "message"),
    [
        (("--scheduler", "tcp://127.0.0.1:9"), "o.csv", "--scheduler needs --engine dask"),
        (("--engine", "dask"), "o.xlsx", "unknown file type '.xlsx' (use .csv, .parquet, .pq)"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(
    exported: Exported,
    data_path: Path,
    tmp_path: Path,
    args: tuple[str, ...],
    output: str,
    message: str,
) -> None:
    done = _predict(exported, "--input", str(data_path), "--output", str(tmp_path / output), *args)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split())  # the console wraps long lines
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


# As if the batch extra were not installed: importing any of its modules raises ImportError.
WITHOUT_BATCH_EXTRA: Final = textwrap.dedent(
    """
    import sys
    EXTRA = ("dask", "distributed", "pyarrow")
    for name in EXTRA:
        sys.modules[name] = None
    from training.cli import main
    code = main(sys.argv[1:])
    loaded = [m for m, mod in sys.modules.items() if m.split(".")[0] in EXTRA and mod is not None]
    assert not loaded, loaded
    sys.exit(code)
    """
)


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_the_cli_needs_the_batch_extra_only_for_dask(
    exported: Exported, data_path: Path, tmp_path: Path, engine: str
) -> None:
    out = tmp_path / "scored.csv"
    files = ["--input", str(data_path), "--output", str(out)]
    registry = ["--artifacts-dir", str(exported.registry.root)]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_BATCH_EXTRA,
            "predict",
            "--engine",
            engine,
            *files,
            *registry,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=bare_env(PATH="/usr/bin:/bin", COLUMNS="200"),
    )
    if engine == "local":
        assert done.returncode == 0, done.stderr
        assert len(pd.read_csv(out)) == 200
    else:
        assert done.returncode == 2
        assert "--engine dask needs the `batch` extra" in done.stderr
        assert "Traceback" not in done.stderr
        assert not out.exists()


def test_an_unreachable_scheduler_is_a_clear_error() -> None:
    with (
        pytest.raises(
            SchedulerError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"
        ),
        dask_client("tcp://127.0.0.1:9", connect_timeout=1.0),
    ):
        pass  # pragma: no cover
