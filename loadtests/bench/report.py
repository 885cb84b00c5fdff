"""The benchmark's report: one Markdown document, printed and written to docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Final

import msgspec

from drugclf.artifact import ArtifactMetadata
from loadtests.bench.http_bench import BATCH_PATIENTS, HttpResult, Point
from loadtests.bench.inprocess import BATCH_SIZES, InProcessResult
from loadtests.bench.pinned import TARGET_RPS, PinnedResult
from loadtests.bench.pinned import render as render_pinned
from loadtests.bench.scenarios import NOT_BUILT, ConditionFigures, ScenarioResult
from loadtests.bench.stats import Spread, format_rate, format_us, markdown_table
from loadtests.bench.wrk import wrk_path

MIB: Final = 1024 * 1024
PACKAGES: Final = ("onnxruntime", "scikit-learn", "litestar", "granian", "msgspec", "numpy")
TARGET_CONNECTIONS: Final = 16
LABELS: Final = {
    "predict": "`POST /predict`",
    "reference": "`POST /bench/reference`",
    "health": "`GET /health`",
    "explain": "`POST /explain`",
    "v2-json": "`POST /v2/.../infer` (JSON)",
    "v2-binary": "`POST /v2/.../infer` (binary)",
}
V2_P50_RATIO: Final = 1.2
REFERENCE_SHARE: Final = 0.85
"""The share of the model-free POST's requests/s ``/predict`` must reach (issue 18)."""
EXPLAIN_P50_RATIO: Final = 1.5
"""One patient's /explain p50 may be at most this many times /predict's (issue 17)."""
"""The V2 route's p50 may be at most this many times /predict's, for the same patients."""


class Settings(msgspec.Struct, frozen=True):
    """How the benchmark ran."""

    duration_s: float
    repeats: int
    workers: int
    wrk_threads: int
    access_log: bool
    prediction_log: bool | None = None
    event_loop: str = "asyncio"


class Report(msgspec.Struct):
    """Everything one ``make bench`` measured."""

    settings: Settings
    model: ArtifactMetadata
    started_at: datetime
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] | None = None
    inprocess: InProcessResult | None = None
    http: HttpResult | None = None
    startup_s: Spread | None = None
    worker_rss: list[int] | None = None
    pinned: PinnedResult | None = None
    scenarios: list[ScenarioResult] = []


def machine() -> str:
    """CPU model, cores, memory and kernel of this machine."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
                break
        else:  # pragma: no cover
            memory = "unknown RAM"
    except OSError:  # pragma: no cover - not Linux
        memory = "unknown RAM"
    return f"{cpu}, {os.cpu_count()} cores, {memory}, {platform.system()} {platform.release()}"


def versions() -> str:
    """Versions of Python, the libraries that matter and wrk."""
    parts = [f"Python {platform.python_version()}"]
    for package in PACKAGES:
        try:
            parts.append(f"{package} {importlib_metadata.version(package)}")
        except importlib_metadata.PackageNotFoundError:
            continue
    try:
        out = subprocess.run(  # noqa: S603
            [wrk_path(), "--version"], capture_output=True, text=True, check=False
        ).stdout
        parts.append(out.split("[")[0].strip() or "wrk")
    except Exception:
        parts.append("wrk (version unknown)")
    return ", ".join(parts)


def source_revision() -> str:
    """The commit measured: ``git describe`` of the checkout, or ``$DRUGCLF_BENCH_COMMIT``."""
    given = os.environ.get("DRUGCLF_BENCH_COMMIT")
    if given:
        return given
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out or "unknown"


def _ratio(numerator: Point | None, denominator: Point | None) -> float | None:
    if numerator is None or denominator is None or not denominator.requests_per_s.median:
        return None
    return numerator.requests_per_s.median / denominator.requests_per_s.median


def _cpu_ratio(numerator: Point | None, denominator: Point | None) -> float | None:
    """Requests/s ratio the server's CPU cost implies: denominator's CPU / numerator's CPU."""
    if numerator is None or denominator is None or not numerator.cpu_us or not denominator.cpu_us:
        return None
    return denominator.cpu_us.median / numerator.cpu_us.median


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def total_failures(report: Report) -> int:
    """Failed or wrong answers over every HTTP run of the benchmark."""
    total = 0
    if report.http:
        total += sum(p.failures for p in report.http.points)
        total += report.http.batch.failures if report.http.batch else 0
        total += sum(p.failures for p in report.http.v2_batches)
    if report.pinned:
        total += sum(route.failures for route in report.pinned.routes)
    for scenario in report.scenarios:
        for figures in (scenario.off, scenario.on):
            total += figures.failures if figures else 0
    return total


def _pinned_targets(pinned: PinnedResult | None) -> list[list[str]]:
    predict = pinned.route("/predict") if pinned else None
    if predict is None:
        return []
    met = predict.requests_per_s.median >= TARGET_RPS
    return [
        [
            f"one pinned worker: ≥ {TARGET_RPS:,} `/predict` requests/s (16 connections)",
            format_rate(predict.requests_per_s),
            "yes" if met else "**no**",
        ]
    ]


def targets(report: Report) -> list[list[str]]:
    """Each target of the issue, what was measured and whether it is met."""
    rows: list[list[str]] = []

    def add(name: str, measured: str, met: bool | None) -> None:
        rows.append([name, measured, "n/a" if met is None else "yes" if met else "**no**"])

    if report.inprocess:
        speedup = report.inprocess.latency_ratio
        add(
            "onnxruntime one-row p50 ≥ 250× lower than scikit-learn",
            f"{speedup:.0f}×",
            speedup >= 250,
        )
    http = report.http
    if http:
        predict = http.point("predict", TARGET_CONNECTIONS)
        ratio = _ratio(predict, http.point("reference", TARGET_CONNECTIONS))
        add(
            "`/predict` ≥ 85 % of the reference's requests/s at 16 connections",
            _pct(ratio),
            None if ratio is None else ratio >= REFERENCE_SHARE,
        )
        cpu_ratio = _cpu_ratio(predict, http.point("reference", TARGET_CONNECTIONS))
        if cpu_ratio is not None:
            rows.append(
                [
                    "(the same from server CPU per request, steadier on a busy machine)",
                    _pct(cpu_ratio),
                    "—",
                ]
            )
        if predict:
            p99 = predict.p99_us.median
            add("`/predict` p99 < 5 ms at 16 connections", format_us(predict.p99_us), p99 < 5_000)
        if http.batch:
            p50 = http.batch.p50_us.median
            add("1,000-patient batch p50 < 3 ms", format_us(http.batch.p50_us), p50 < 3_000)
        rows.extend(_v2_targets(http))
        explain = _p50_ratio(http.point("explain", TARGET_CONNECTIONS), predict)
        if explain is not None:
            add(
                f"one patient's `/explain` p50 ≤ {EXPLAIN_P50_RATIO:g}× `/predict`'s "
                f"({TARGET_CONNECTIONS} connections)",
                f"{explain:.2f}×",
                explain <= EXPLAIN_P50_RATIO,
            )
    rows.extend(_pinned_targets(report.pinned))
    if report.startup_s:
        add(
            "ready < 1 s after start",
            f"{report.startup_s.format('{:.2f}', ' s')}",
            report.startup_s.median < 1.0,
        )
    if report.worker_rss:
        worst = max(report.worker_rss) / MIB
        add("< 100 MiB RSS per worker", f"{worst:.0f} MiB (largest worker)", worst < 100)
    if report.http or report.scenarios:
        failures = total_failures(report)
        add("zero failed or wrong answers (wrk)", str(failures), failures == 0)
    if report.http:
        points = [p for p in [*report.http.points, report.http.batch] if p]
        dropped = [p.log_dropped for p in points if p.log_dropped is not None]
        if dropped:
            add(
                "prediction log: no row dropped in the HTTP runs",
                f"{sum(dropped):,}",
                not any(dropped),
            )
        drains = [p.log_drain_s.high for p in points if p.log_drain_s]
        if drains:
            rows.append(
                ["(not a target) longest log drain after a run", f"{max(drains):.1f} s", "—"]
            )
    return rows


def _p50_ratio(numerator: Point | None, denominator: Point | None) -> float | None:
    if numerator is None or denominator is None or not denominator.p50_us.median:
        return None
    return numerator.p50_us.median / denominator.p50_us.median


def _v2_targets(http: HttpResult) -> list[list[str]]:
    """The Open Inference Protocol's targets: each within 1.2x of /predict's p50, binary wins."""
    rows = []
    predict = http.point("predict", TARGET_CONNECTIONS)
    batches = {point.target: point for point in http.v2_batches}
    for kind in ("json", "binary"):
        name = "JSON" if kind == "json" else "binary"
        for label, ratio in (
            (
                f"one patient at {TARGET_CONNECTIONS} connections",
                _p50_ratio(http.point(f"v2-{kind}", TARGET_CONNECTIONS), predict),
            ),
            ("1,000 patients", _p50_ratio(batches.get(f"v2-{kind}-batch"), http.batch)),
        ):
            if ratio is not None:
                rows.append(
                    [
                        f"V2 {name}, {label}: p50 ≤ {V2_P50_RATIO:g}× `/predict`'s",
                        f"{ratio:.2f}×",
                        "yes" if ratio <= V2_P50_RATIO else "**no**",
                    ]
                )
    binary, inline = batches.get("v2-binary-batch"), batches.get("v2-json-batch")
    ratio = _p50_ratio(binary, inline)
    if binary is not None and inline is not None and ratio is not None:
        rows.append(
            [
                "V2 1,000 patients: binary p50 < JSON p50",
                f"{format_us(binary.p50_us)} vs {format_us(inline.p50_us)} ({ratio:.2f}×)",
                "yes" if ratio < 1 else "**no**",
            ]
        )
    return rows


def _times(ratio: float, word: str) -> str:
    return f"{ratio:.1f}× {word}" if ratio < 10 else f"{ratio:.0f}× {word}"


def _inprocess_section(result: InProcessResult) -> list[str]:
    p99_ratio = result.sklearn_latency.p99_us.median / result.onnx_latency.p99_us.median
    table = result.table_latency
    table_rates = result.table_rows_per_s

    def looked_up(figure: Spread | None, onnx: Spread, *, rate: bool) -> list[str]:
        if figure is None:
            return []
        ratio = figure.median / onnx.median if rate else onnx.median / figure.median
        compared = _times(ratio, "faster") if ratio >= 1 else _times(1 / ratio, "slower")
        return [format_rate(figure) if rate else format_us(figure), compared]

    rows = [
        [
            "one-row latency p50",
            format_us(result.onnx_latency.p50_us),
            format_us(result.sklearn_latency.p50_us),
            f"{result.latency_ratio:.0f}× lower",
            *looked_up(table.p50_us if table else None, result.onnx_latency.p50_us, rate=False),
        ],
        [
            "one-row latency p99",
            format_us(result.onnx_latency.p99_us),
            format_us(result.sklearn_latency.p99_us),
            f"{p99_ratio:.0f}× lower",
            *looked_up(table.p99_us if table else None, result.onnx_latency.p99_us, rate=False),
        ],
    ]
    for size in BATCH_SIZES:
        onnx, sklearn = result.onnx_rows_per_s[size], result.sklearn_rows_per_s[size]
        rows.append(
            [
                f"rows/s, batches of {size:,}",
                format_rate(onnx),
                format_rate(sklearn),
                _times(onnx.median / sklearn.median, "more"),
                *looked_up(table_rates[size] if table_rates else None, onnx, rate=True),
            ]
        )
    header = ["", "onnxruntime", "scikit-learn", "onnxruntime vs scikit-learn"]
    if table is not None:
        header += ["cell table", "cell table vs onnxruntime"]
    return [
        "## 1. In-process: onnxruntime against the scikit-learn pipeline",
        "",
        "Same patients, already in each side's input form (column tensors; a typed DataFrame), "
        "so the model is timed, not the conversion. onnxruntime uses serving's session options "
        f"(one thread). scikit-learn pipeline: {result.sklearn_source}. The cell table is the "
        "version's answer per cell, looked up as serving answers: one patient from its fields "
        "(`CellTable.predict_one`), a batch from the same column tensors "
        '(docs/serving.md, "The cell table").',
        "",
        *markdown_table(header, rows),
    ]


def _on(flag: bool | None) -> str:
    return "n/a" if flag is None else "on" if flag else "off"


def _http_section(http: HttpResult, settings: Settings) -> list[str]:
    rows = []
    for key in LABELS:
        for point in sorted(
            (p for p in http.points if p.target == key), key=lambda p: p.connections
        ):
            rows.append([LABELS[key], str(point.connections), *_run_cells(point)])
    ratio_rows = []
    connections = sorted({p.connections for p in http.points})
    for count in connections:
        predict = http.point("predict", count)
        ratio_rows.append(
            [
                str(count),
                _pct(_ratio(predict, http.point("reference", count))),
                _pct(_ratio(predict, http.point("health", count))),
                _pct(_cpu_ratio(predict, http.point("reference", count))),
                _pct(_cpu_ratio(predict, http.point("health", count))),
            ]
        )
    lines = [
        "## 2. HTTP: `/predict` against the model-free reference, with wrk",
        "",
        f"The production server (`python -m serving`, granian, {settings.workers} workers, "
        f"{settings.event_loop} event loop, "
        f"access log {_on(settings.access_log)}, prediction log {_on(settings.prediction_log)}) "
        "on loopback; wrk with "
        f"{settings.wrk_threads} thread(s), {settings.duration_s:g} s per run. Bodies: 200 "
        "patients (half from the dataset, half across the contract's ranges), cycled. "
        "`POST /bench/reference` decodes the same body through the same stack and returns a "
        "fixed answer without the model. Every answer is checked by the wrk Lua hook (status 200 "
        "and a model version in the body); each body's answer was first checked in full.",
        "",
        *markdown_table(["Endpoint", "Connections", *RUN_COLUMNS], rows),
        "",
        "How close predictions come to what the server itself can do: ratios of requests/s "
        "(medians), and the ratios the server's CPU time per request implies (all workers, "
        "user + system). On a shared machine the second pair is the steadier one: it does not "
        "count time the server spent waiting for a core.",
        "",
        *markdown_table(
            [
                "Connections",
                "predict / reference",
                "predict / health",
                "by CPU: predict / reference",
                "by CPU: predict / health",
            ],
            ratio_rows,
        ),
    ]
    if http.reference_missing:
        lines += ["", f"Reference not measured: {http.reference_missing}."]
    return lines


def _batch_section(point: Point, v2_batches: list[Point]) -> list[str]:
    v2_rows = [
        [
            f"`POST /v2/.../infer` ({'binary' if 'binary' in p.target else 'JSON'})",
            *_run_cells(p, BATCH_PATIENTS),
        ]
        for p in v2_batches
    ]
    return [
        "## 3. A 1,000-patient batch, end to end",
        "",
        "One connection, one request in flight, wrk timing the whole exchange (upload of ~70 KB, "
        "decoding, one onnxruntime call, encoding, download).",
        "",
        *markdown_table(
            ["Endpoint", *RUN_COLUMNS],
            [["`POST /predict`", *_run_cells(point, BATCH_PATIENTS)], *v2_rows],
        ),
        "",
        "The V2 rows send the same 1,000 patients as Open Inference Protocol tensors, inline "
        "(JSON) or as binary data, and ask for the outputs the same way.",
        "",
        "Server CPU per request includes the prediction log catching up after the run: each run "
        "waits for the log to write what it spooled before the next starts, and *log drain* is "
        "how long that took (the backlog the run left on disk). Rows the log dropped are "
        "counted in `drugclf_prediction_log_dropped_total`; see monitoring.md for the log's "
        "capacity.",
    ]


RUN_COLUMNS: Final = [
    "Requests/s",
    "p50",
    "p99",
    "Server CPU / request",
    "Failed or wrong / requests",
    "Log rows dropped",
    "Log drain",
]


def _run_cells(point: Point, rows_per_request: int = 1) -> list[str]:
    """A point's cells under ``RUN_COLUMNS``."""
    return [
        format_rate(point.requests_per_s),
        format_us(point.p50_us),
        format_us(point.p99_us),
        format_us(point.cpu_us) if point.cpu_us else "n/a",
        f"{point.failures} / {point.requests:,}",
        _dropped(point, rows_per_request),
        point.log_drain_s.format("{:.1f}", " s") if point.log_drain_s else "n/a",
    ]


def _dropped(point: Point, rows_per_request: int = 1) -> str:
    """Log rows dropped, and their share of the rows the run recorded."""
    if point.log_dropped is None:
        return "n/a (log off)"
    if not point.log_dropped:
        return "0"
    share = point.log_dropped / max(1, point.requests * rows_per_request)
    return f"{point.log_dropped:,} ({share:.0%})"


def _startup_section(report: Report) -> list[str]:
    rows = []
    if report.startup_s:
        rows.append(
            ["Start to ready (`GET /ready` = 200)", report.startup_s.format("{:.2f}", " s")]
        )
    if report.worker_rss:
        per_worker = ", ".join(f"{rss / MIB:.0f}" for rss in report.worker_rss)
        rows.append(["RSS per worker after the HTTP runs", f"{per_worker} MiB"])
    return [
        "## 4. Startup and memory",
        "",
        "Start is timed from launching `python -m serving` (interpreter start and imports "
        "included) to the first 200 from `/ready`, on fresh processes.",
        "",
        *markdown_table(["", "Measured"], rows),
    ]


def _figures(figures: ConditionFigures | None, note: str) -> list[str]:
    if figures is None:
        return [note or NOT_BUILT] * 4
    run = figures.run_s.format("{:.0f}", " s") if figures.run_s else "n/a"
    return [
        format_us(figures.p99_us),
        format_rate(figures.requests_per_s),
        str(figures.failures),
        run,
    ]


def _scenario_section(results: list[ScenarioResult]) -> list[str]:
    rows = []
    for result in results:
        rows.append([result.name, result.off_label, *_figures(result.off, result.note)])
        rows.append([result.name, result.on_label, *_figures(result.on, result.note)])
    return [
        "## 5. `/predict` under conditions",
        "",
        f"`POST /predict` at {TARGET_CONNECTIONS} connections, each condition off and on "
        "alternately, over a private copy of the artifacts. Retrain: one server; a run with a "
        "retrain lasts as long as the retrain (`python -m training full`: train, evaluate, "
        "export behind the parity gate, promote), so it includes the hot reload of the new "
        "version. Prediction log: a fresh server per run, the log switched by its setting. "
        "A/B + shadow: a fresh server per run, a traffic policy written into the registry copy "
        "or not (a copy of the served version answers 10 %, another listens to every request; "
        "docs/experiments.md).",
        "",
        *markdown_table(
            ["Scenario", "Condition", "p99", "Requests/s", "Failed or wrong", "Run length"], rows
        ),
    ]


def render(report: Report) -> str:
    """The whole report as Markdown."""
    settings = report.settings
    load_after = report.load_after or report.load_before
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m loadtests.bench`); do not edit by hand. How to run "
        "and read it: [loadtesting.md](loadtesting.md).",
        "",
        f"- **Date:** {report.started_at:%Y-%m-%d %H:%M} UTC",
        f"- **Machine:** {machine()}. Shared with other work: load average "
        f"{report.load_before[0]:.1f} before, {load_after[0]:.1f} after.",
        f"- **Code:** commit {source_revision()}",
        f"- **Versions:** {versions()}",
        f"- **Model:** {report.model.version} ({report.model.model_type}, "
        f"{report.model.params.n_estimators} trees, at most {report.model.params.max_leaf_nodes} "
        "leaves each)",
        f"- **Runs:** every figure is the median (min–max) of {settings.repeats} "
        f"repeat{'s' if settings.repeats > 1 else ''}"
        f"{f', {settings.duration_s:g} s each' if report.http else ''}.",
        "",
        "## Targets",
        "",
        *markdown_table(["Target (2-core machine)", "Measured (median)", "Met"], targets(report)),
    ]
    if report.inprocess:
        lines += ["", *_inprocess_section(report.inprocess)]
    if report.http:
        lines += ["", *_http_section(report.http, settings)]
        if report.http.batch:
            lines += ["", *_batch_section(report.http.batch, report.http.v2_batches)]
    if report.startup_s or report.worker_rss:
        lines += ["", *_startup_section(report)]
    if report.pinned:
        lines += ["", *render_pinned(report.pinned)]
    if report.scenarios:
        lines += ["", *_scenario_section(report.scenarios)]
    return "\n".join(lines) + "\n"


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
