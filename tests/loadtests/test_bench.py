"""The benchmark harness: statistics, wrk's answer checking, the report, and a quick real run."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import numpy as np
import pytest

from drugclf.artifact import read_metadata
from drugclf.registry import Registry
from loadtests.bench.__main__ import main as bench_main
from loadtests.bench.http_bench import HttpResult, Point
from loadtests.bench.pinned import PinnedResult, PinnedRoute
from loadtests.bench.report import Report, Settings, render, targets
from loadtests.bench.scenarios import NOT_BUILT, ScenarioResult
from loadtests.bench.stats import Spread, format_us, percentile
from loadtests.bench.v2 import check_v2_answer, v2_body
from loadtests.bench.wrk import WrkError, parse_output, run_wrk
from loadtests.checks import WrongAnswerError
from serving.v2.codec import TensorCodec
from tests.support import PATIENT

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt)")


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_spread_reports_median_and_range() -> None:
    spread = Spread.of([3.0, 1.0, 2.0])
    assert (spread.low, spread.median, spread.high) == (1.0, 2.0, 3.0)
    assert spread.format() == "2 (1–3)"
    assert Spread.of([5.0, 5.0]).format() == "5"
    assert format_us(Spread.of([70.0, 80.0, 90.0])) == "80 µs (70 µs–90 µs)"
    assert format_us(Spread.of([2500.0])) == "2.50 ms"


def test_parse_output_reads_the_lua_result_line() -> None:
    line = (
        'WRK_RESULT {"requests":100,"duration_us":2000000,"answers":100,"bad":3,'
        '"connect_errors":0,"read_errors":1,"write_errors":0,"status_errors":3,"timeouts":1,'
        '"p50_us":500.0,"p90_us":900.0,"p99_us":1500.0,"max_us":2000.0,"mean_us":600.0}'
    )
    result = parse_output(f"Running 2s test\n{line}\n")
    assert result.requests_per_s == 50
    assert result.failures == 5  # 3 wrong answers + 1 read error + 1 timeout
    with pytest.raises(WrkError, match="no result"):
        parse_output("Running 2s test\n")


def test_run_wrk_refuses_anything_but_loopback() -> None:
    with pytest.raises(WrkError, match="loopback"):
        run_wrk("http://example.com/predict", connections=1, duration_s=1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status, body = {
            "/right": (200, b'{"prediction":"DrugY","model_version":"v1"}'),
            "/wrong": (200, b'{"prediction":"DrugY"}'),
            "/error": (500, b'{"error":"boom"}'),
        }[self.path]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        # /binary: the body must arrive byte for byte, with its own header.
        body = self.rfile.read(int(self.headers["Content-Length"]))
        header = self.headers.get("Inference-Header-Content-Length")
        right = body == BINARY_BODY and header == str(len(BINARY_BODY) - 3)
        answer = b'{"model_version":"v1"}' if right else b'{"wrong":1}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


BINARY_BODY = b'{"inputs":[]}\n\x00\xff\t'


@pytest.fixture
def tiny_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@needs_wrk
@pytest.mark.slow  # a second of wrk per case
@pytest.mark.parametrize(("path", "wrong"), [("/right", False), ("/wrong", True), ("/error", True)])
def test_wrk_hook_counts_wrong_answers(tiny_server: int, path: str, wrong: bool) -> None:
    result = run_wrk(
        f"http://127.0.0.1:{tiny_server}{path}",
        connections=1,
        duration_s=1,
        expect='"model_version"',
    )
    assert result.requests > 0
    if wrong:
        assert result.bad == result.answers > 0
        assert result.failures >= result.bad
    else:
        assert result.bad == 0
        assert result.failures == 0


@needs_wrk
@pytest.mark.slow
def test_wrk_sends_binary_bodies_with_their_own_headers(tiny_server: int) -> None:
    result = run_wrk(
        f"http://127.0.0.1:{tiny_server}/binary",
        connections=1,
        duration_s=1,
        method="POST",
        bodies=[BINARY_BODY],
        body_headers=[{"Inference-Header-Content-Length": str(len(BINARY_BODY) - 3)}],
        expect='"model_version"',
    )
    assert result.requests > 0 and result.bad == 0


@pytest.mark.parametrize("binary", [False, True])
def test_v2_bodies_carry_the_same_patients(binary: bool) -> None:
    patients = [dict(PATIENT), {**PATIENT, "Age": 61, "BP": "NORMAL", "Na_to_K": 25.4}]
    request = v2_body(patients, binary=binary)
    codec = TensorCodec(max_batch_size=10)
    header = None if request.header_length is None else str(request.header_length)
    decoded = codec.decode(request.body, header)
    assert [msgspec.to_builtins(p) for p in decoded.patients] == patients
    assert decoded.outputs == (("label", binary), ("probabilities", binary))
    probabilities = np.array([[0.5, 0.5, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=np.float32)
    body, length = codec.encode(decoded, ["DrugA", "DrugY"], probabilities, "m", "v")
    headers = {} if length is None else {"Inference-Header-Content-Length": str(length)}
    check_v2_answer(200, headers, body, 2)
    with pytest.raises(WrongAnswerError):
        check_v2_answer(200, headers, body, 3)


def test_report_marks_unbuilt_scenarios_and_missed_targets(served_artifacts: Path) -> None:
    metadata = read_metadata(Registry(served_artifacts).resolve_current())
    report = Report(
        settings=Settings(5.0, 3, 2, 1, True),
        model=metadata,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        load_before=(0.5, 0.5, 0.5),
        startup_s=Spread.of([0.8, 1.5, 1.6]),
        worker_rss=[60 * 2**20, 70 * 2**20],
        scenarios=[ScenarioResult("retrain", "no retrain", "retrain running", note=NOT_BUILT)],
    )
    text = render(report)
    assert NOT_BUILT in text
    assert "2026-01-01" in text
    assert metadata.version in text
    met = {row[0]: row[2] for row in targets(report)}
    assert met["ready < 1 s after start"] == "**no**"
    assert met["< 100 MiB RSS per worker"] == "yes"


def _point(
    target: str, requests: int, log_dropped: int | None, drain: float | None = None
) -> Point:
    spread = Spread.of([1000.0])
    drains = Spread.of([drain]) if drain is not None else None
    return Point(target, 1, spread, spread, spread, requests, 0, None, log_dropped, drains)


def test_report_counts_the_rows_the_log_dropped(served_artifacts: Path) -> None:
    # The answers were right, but the log fell behind: the report must say so, not hide it.
    report = Report(
        settings=Settings(5.0, 3, 2, 1, True, True),
        model=read_metadata(Registry(served_artifacts).resolve_current()),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        load_before=(0.5, 0.5, 0.5),
        http=HttpResult(
            points=[_point("predict", 100, 0, 0.3), _point("health", 100, 0)],
            batch=_point("batch", 10, 1500, 2.5),
        ),
    )
    rows = {row[0]: row[1:] for row in targets(report)}
    assert rows["prediction log: no row dropped in the HTTP runs"] == ["1,500", "**no**"]
    assert rows["(not a target) longest log drain after a run"] == ["2.5 s", "—"]
    text = render(report)
    assert "| 1,500 (15%) | 2.5 s |" in text  # 1,500 of the batch runs' 10,000 rows
    assert "| 0 | 0.3 s |" in text


def test_report_holds_v2_to_predict_s_p50(served_artifacts: Path) -> None:
    def point(target: str, p50: float, connections: int = 16) -> Point:
        spread = Spread.of([p50])
        return Point(target, connections, spread, spread, spread, 10, 0)

    report = Report(
        settings=Settings(5.0, 3, 2, 1, True),
        model=read_metadata(Registry(served_artifacts).resolve_current()),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        load_before=(0.5, 0.5, 0.5),
        http=HttpResult(
            points=[point("predict", 1000), point("v2-json", 1100), point("v2-binary", 1300)],
            batch=point("batch", 8000, 1),
            v2_batches=[point("v2-json-batch", 9000, 1), point("v2-binary-batch", 8500, 1)],
        ),
    )
    rows = {row[0]: row[1:] for row in targets(report)}
    assert rows["V2 JSON, one patient at 16 connections: p50 ≤ 1.2× `/predict`'s"] == [
        "1.10×",
        "yes",
    ]
    assert rows["V2 binary, one patient at 16 connections: p50 ≤ 1.2× `/predict`'s"] == [
        "1.30×",
        "**no**",
    ]
    assert rows["V2 JSON, 1,000 patients: p50 ≤ 1.2× `/predict`'s"] == ["1.12×", "yes"]
    assert rows["V2 1,000 patients: binary p50 < JSON p50"][1] == "yes"
    assert "`POST /v2/.../infer` (binary)" in render(report)


def test_report_holds_the_pinned_worker_to_its_target(served_artifacts: Path) -> None:
    def route(path: str, rps: float) -> PinnedRoute:
        spread = Spread.of([rps])
        return PinnedRoute(path, spread, spread, spread, spread, 0)

    report = Report(
        settings=Settings(5.0, 3, 2, 1, True),
        model=read_metadata(Registry(served_artifacts).resolve_current()),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        load_before=(0.5, 0.5, 0.5),
        pinned=PinnedResult(0, 1, [route("/predict", 6400), route("/bench/reference", 8000)]),
    )
    rows = {row[0]: row[1:] for row in targets(report)}
    assert rows["one pinned worker: ≥ 6,500 `/predict` requests/s (16 connections)"] == [
        "6,400",
        "**no**",
    ]
    assert "answers 80% of the model-free route's requests/s" in render(report)


@needs_wrk
@pytest.mark.slow
@pytest.mark.e2e
def test_quick_benchmark_runs_and_writes_its_report(served_artifacts: Path, tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    code = bench_main(
        [
            "--artifacts-dir",
            str(served_artifacts),
            "--runs-dir",
            str(served_artifacts.parent / "runs"),
            "--quick",
            "--duration",
            "1",
            "--connections",
            "1",
            "4",
            "--workers",
            "1",
            "--skip",
            "scenarios",
            "--output",
            str(output),
        ]
    )
    text = output.read_text()
    assert code == 0, text
    for heading in ("## Targets", "## 1. In-process", "## 2. HTTP", "## 3. A 1,000", "## 4."):
        assert heading in text
    assert "`POST /bench/reference`" in text
    assert "cell table vs onnxruntime" in text  # the served version has a cell table
    assert "Log rows dropped" in text
    assert "prediction log: no row dropped in the HTTP runs" in text  # the bench's server logs
    assert "Log drain" in text
    assert "`POST /v2/.../infer` (binary)" in text  # the V2 rows, beside /predict
    assert "## One worker on one core" in text  # CI has two cores
    assert "one pinned worker: ≥ 6,500 `/predict` requests/s" in text


def test_bench_without_a_model_says_so_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loadtests.bench.pinned import main as pinned_main

    assert bench_main(["--artifacts-dir", str(tmp_path)]) == 2
    assert pinned_main(["--artifacts-dir", str(tmp_path)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2
    assert all(line.startswith("error: no model published") for line in errors)
