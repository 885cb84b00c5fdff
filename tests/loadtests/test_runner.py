"""The headless Locust runner and the benchmark's scenario list, without starting anything."""

from __future__ import annotations

from pathlib import Path

from loadtests.bench.scenarios import NOT_BUILT, scenarios
from loadtests.run import LOCUSTFILE, locust_command, parse_args


def test_locust_command_is_headless_with_reports(tmp_path: Path) -> None:
    args = parse_args(
        ["--users", "7", "--spawn-rate", "2", "--duration", "15s", "--reports", str(tmp_path)]
    )
    command = locust_command(args, "http://127.0.0.1:9999")
    assert command[1:3] == ["-m", "locust"]
    assert str(LOCUSTFILE) in command and LOCUSTFILE.is_file()
    for flag, value in [
        ("--host", "http://127.0.0.1:9999"),
        ("--users", "7"),
        ("--spawn-rate", "2.0"),
        ("--run-time", "15s"),
        ("--csv", str(tmp_path / "locust")),
        ("--html", str(tmp_path / "locust.html")),
        ("--exit-code-on-error", "1"),
    ]:
        assert command[command.index(flag) + 1] == value
    assert "--headless" in command


def test_scenarios_cover_retrain_prediction_log_and_ab() -> None:
    found = {s.name: s for s in scenarios()}
    assert set(found) == {"retrain", "prediction log", "A/B + shadow"}
    assert found["A/B + shadow"].during == "ab"
    log = found["prediction log"]
    if log.available is None:  # monitoring is built: the setting switches the log
        assert log.off_env != log.on_env
        assert all(name.startswith("DRUGCLF_") for name in log.on_env)
    else:
        assert log.available == NOT_BUILT
    assert found["retrain"].during == "retrain"
