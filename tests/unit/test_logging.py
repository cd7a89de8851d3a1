"""Services log our own lines as JSON or, for people, as coloured console lines; libraries'
chatter stays out of the way; a poll's or batch's line is detail, summed up once a minute."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from shared.log_summary import MinuteSummary, SummaryWindow
from shared.logging import LIBRARY_LOG_LEVELS, OUR_PACKAGES, configure_logging
from shared.settings import CommonSettings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = [*LIBRARY_LOG_LEVELS, *OUR_PACKAGES]
    library_levels = {name: logging.getLogger(name).level for name in names}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, library_level in library_levels.items():
        logging.getLogger(name).setLevel(library_level)


@pytest.mark.usefixtures("restore_logging")
def test_our_lines_stay_and_library_chatter_goes(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("stream-worker", "INFO")
    logging.getLogger("services.stream_worker.worker").info("batch %d: 3 assets", 7)
    # What py4j logs on every trigger of a streaming query with foreachBatch.
    logging.getLogger("py4j.clientserver").info("Received command c on object id p0")
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    logging.getLogger("py4j.java_gateway").warning("the gateway is gone")

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["message"] for line in lines] == ["batch 7: 3 assets", "the gateway is gone"]
    assert lines[0]["service"] == "stream-worker"
    assert lines[0]["level"] == "INFO"
    assert lines[0]["logger"] == "services.stream_worker.worker"


@pytest.mark.usefixtures("restore_logging")
def test_console_lines_are_level_and_message_coloured_by_level(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    configure_logging("stream-worker", "INFO", "console")
    logger = logging.getLogger("services.stream_worker.worker")
    logger.info("batch %d: 3 assets", 7)
    logger.warning("the broker is slow")
    assert capsys.readouterr().out.splitlines() == [
        "INFO    batch 7: 3 assets",
        "\x1b[33mWARNING the broker is slow\x1b[0m",
    ]


@pytest.mark.usefixtures("restore_logging")
def test_no_color_keeps_console_lines_plain(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    configure_logging("control", "INFO", "console")
    logging.getLogger("services.control").error("the warehouse is down")
    assert capsys.readouterr().out == "ERROR   the warehouse is down\n"


@pytest.mark.usefixtures("restore_logging")
def test_auto_is_json_when_stdout_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("control", "INFO", "auto")  # pytest's captured stdout is no terminal
    logging.getLogger("services.control").info("ready")
    assert json.loads(capsys.readouterr().out)["message"] == "ready"


@pytest.mark.usefixtures("restore_logging")
def test_debug_opens_our_loggers_and_not_the_libraries(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("asset-ingestor", "DEBUG", "json")
    logging.getLogger("services.ingestor.loop").debug("assets: poll p1 fetched 100 records")
    logging.getLogger("urllib3.connectionpool").debug("Starting new HTTPS connection")
    logging.getLogger("urllib3.connectionpool").info("Resetting dropped connection")
    messages = [json.loads(line)["message"] for line in capsys.readouterr().out.splitlines()]
    assert messages == ["assets: poll p1 fetched 100 records", "Resetting dropped connection"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOG_LEVEL", "loud"), ("LOG_LEVEL", "\x7f\u00e9"), ("LOG_FORMAT", "xml"), ("LOG_FORMAT", "")],
)
def test_a_log_setting_out_of_its_choices_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"COINSTREAM_{name}", value)
    with pytest.raises(ValueError, match=name.lower()):
        CommonSettings(_env_file=None)


def test_log_settings_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINSTREAM_LOG_LEVEL", " debug")
    monkeypatch.setenv("COINSTREAM_LOG_FORMAT", "Console")
    settings = CommonSettings(_env_file=None)
    assert (settings.log_level, settings.log_format) == ("DEBUG", "console")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_event_is_info_the_rest_debug_and_a_summary_each_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    windows: list[SummaryWindow] = []

    def describe(window: SummaryWindow) -> str:
        windows.append(window)
        return f"{window.events} batches: {window.totals['assets']} assets"

    summary = MinuteSummary(logging.getLogger("services.test"), describe, 60.0, clock)
    levels = []
    with caplog.at_level(logging.INFO, logger="services.test"):
        for second in range(0, 125, 5):  # an event every 5 s for two minutes
            clock.now = 1000.0 + second
            levels.append(summary.line_level())
            summary.add({"assets": 10}, seconds=0.5 + second / 1000)
    assert levels[0] == logging.INFO
    assert set(levels[1:]) == {logging.DEBUG}
    # At 60 s (events at 0..60 s: 13) and at 120 s (65..120 s: 12).
    assert caplog.messages == ["13 batches: 130 assets", "12 batches: 120 assets"]
    assert [window.seconds for window in windows] == [60.0, 60.0]
    assert windows[1].durations_text() == "median 0.59 s, slowest 0.62 s"
