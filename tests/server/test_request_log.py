"""Logs an operator can use: one line per request with its request id, which every response echoes;
a traceback for a bug and none for a user's mistake; JSON off a terminal, text on one."""
from __future__ import annotations

import io
import json
import logging

import pytest

from pixline.server.commands.logs import configure_logging
from pixline.server.settings import SettingsError

ACCESS = "pixline.access"


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS]


@pytest.fixture(autouse=True)
def capture_info(caplog):
    caplog.set_level(logging.INFO)


def test_every_response_carries_a_request_id(service):
    made = service.client.simulate_get("/healthz").headers["X-Request-ID"]
    assert len(made) == 32 and int(made, 16) >= 0
    assert service.client.simulate_get("/healthz").headers["X-Request-ID"] != made
    given = {"X-Request-ID": "edge-7f3a:42"}
    assert service.client.simulate_get("/healthz", headers=given).headers["X-Request-ID"] == "edge-7f3a:42"
    # An id that is too long or has other characters is replaced, not trusted and not an error.
    for bad in ("x" * 129, "a b", "id\nwith-newline", "é"):
        result = service.client.simulate_get("/healthz", headers={"X-Request-ID": bad})
        assert result.status_code == 200 and len(result.headers["X-Request-ID"]) == 32
    # Errors too, falcon's own 404 included.
    assert service.client.simulate_get("/nowhere", headers=given).headers["X-Request-ID"] == "edge-7f3a:42"


def test_one_line_per_request_with_its_fields(service, small_jpeg, caplog):
    image_id = service.upload(small_jpeg, headers={"X-Request-ID": "upload-1"})
    upload, = access_lines(caplog)
    assert (upload.method, upload.route, upload.status, upload.image_id, upload.request_id) == (
        "POST", "/images", 201, image_id, "upload-1")
    caplog.clear()
    first = service.client.simulate_get(f"/r/thumb/{image_id}")
    again = service.client.simulate_get(f"/r/thumb/{image_id}")
    cached = service.client.simulate_get(f"/r/thumb/{image_id}", headers={"If-None-Match": first.headers["ETag"]})
    head = service.client.simulate_head(f"/r/thumb/{image_id}")
    lines = access_lines(caplog)
    assert len(lines) == 4
    for line in lines:
        assert (line.route, line.recipe, line.image_id, line.path) == (
            "/r/{recipe}/{image_id}", "thumb", image_id, f"/r/thumb/{image_id}")
        assert line.duration_ms >= 0 and len(line.request_id) == 32
    assert [(l.method, l.status, l.rendered) for l in lines] == [
        ("GET", 200, True), ("GET", 200, False), ("GET", 304, False), ("HEAD", 200, False)]
    assert [l.bytes for l in lines] == [len(first.content), len(again.content), 0, 0]
    assert lines[0].request_id == first.headers["X-Request-ID"]
    assert "rendered" in lines[0].getMessage() and f"{len(first.content)} B" in lines[0].getMessage()


def test_ad_hoc_urls_log_their_recipe_and_image(service, small_jpeg, caplog):
    from pixline.server.http.signing import sign_path

    image_id = service.upload(small_jpeg)
    caplog.clear()
    result = service.client.simulate_get(sign_path(f"resize:w=40/{image_id}", "test-key"))
    line, = access_lines(caplog)
    assert (line.route, line.recipe, line.image_id, line.rendered, line.bytes) == (
        "/t/{signature}/{path:path}", "adhoc", image_id, True, len(result.content))


def test_a_users_mistake_is_one_line_without_traceback(service, caplog):
    result = service.client.simulate_get("/images/" + "0" * 32)
    assert result.status_code == 404
    assert not [r for r in caplog.records if r.exc_info]
    line, = access_lines(caplog)
    assert (line.status, line.route, line.image_id) == (404, "/images/{image_id}", "0" * 32)
    caplog.clear()
    assert service.client.simulate_get("/no/such/route").status_code == 404
    line, = access_lines(caplog)
    assert (line.status, line.route) == (404, None)
    caplog.clear()
    service.client.simulate_get("/images/a%0Afake line")  # a text log stays one line per request
    line, = access_lines(caplog)
    assert "\n" not in line.getMessage() and "/images/a\\nfake line" in line.getMessage()


def test_a_bug_is_a_500_with_its_traceback_logged_and_the_request_id_in_the_answer(service, caplog):
    class Broken:
        def on_get(self, req, resp):
            raise RuntimeError("a bug")

    service.client.app.add_route("/broken", Broken())
    result = service.client.simulate_get("/broken", headers={"X-Request-ID": "bug-1"})
    assert result.status_code == 500 and result.headers["content-type"] == "application/problem+json"
    assert "bug-1" in result.json["detail"] and "RuntimeError" not in result.json["detail"]
    bug, = [r for r in caplog.records if r.exc_info]
    assert bug.levelno == logging.ERROR and "RuntimeError: a bug" in caplog.text
    assert access_lines(caplog)[-1].status == 500


def lines_of(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name in ("pixline.access", "pixline.jobs", "pyvips", "pika"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_json_off_a_terminal_with_the_request_id_on_every_line_of_a_request(service, restore_logging):
    stream = io.StringIO()
    configure_logging("warning", "auto", stream=stream)
    service.client.simulate_get("/images/" + "0" * 32, headers={"X-Request-ID": "trace-me"})

    class Broken:
        def on_get(self, req, resp):
            raise RuntimeError("a bug")

    service.client.app.add_route("/broken", Broken())
    service.client.simulate_get("/broken", headers={"X-Request-ID": "bug-2"})
    records = [json.loads(line) for line in lines_of(stream)]
    access = [r for r in records if r["logger"] == ACCESS]
    assert [(r["status"], r["request_id"]) for r in access] == [(404, "trace-me"), (500, "bug-2")]
    assert set(access[0]) >= {"time", "level", "message", "method", "route", "status", "bytes",
                              "duration_ms", "recipe", "image_id", "rendered", "request_id"}
    bug, = [r for r in records if "exc_info" in r]
    assert bug["request_id"] == "bug-2" and "RuntimeError: a bug" in bug["exc_info"]


def test_text_on_a_terminal_and_formats_by_name(restore_logging):
    terminal = Terminal()
    configure_logging("info", "auto", stream=terminal)
    logging.getLogger("pixline.test").info("hello %s", "there")
    assert lines_of(terminal)[-1].endswith("INFO pixline.test: hello there")
    forced = Terminal()
    configure_logging("info", "json", stream=forced)
    logging.getLogger("pixline.test").info("hello")
    assert json.loads(lines_of(forced)[-1])["message"] == "hello"
    assert not lines_of(terminal)[1:], "the handler of the first call was replaced, not added to"
    with pytest.raises(SettingsError, match="log format 'xml'"):
        configure_logging("info", "xml")
    with pytest.raises(SettingsError, match="log level 'loud'"):
        configure_logging("loud", "text")


def test_request_and_job_lines_show_at_the_default_level_and_hide_at_error(restore_logging):
    stream = io.StringIO()
    configure_logging("warning", "text", stream=stream)
    logging.getLogger(ACCESS).info("a request")
    logging.getLogger("pixline.jobs").info("a job")
    logging.getLogger("pixline.server.http.app").info("chatter")
    assert [line.split(": ", 1)[1] for line in lines_of(stream)] == ["a request", "a job"]
    configure_logging("error", "text", stream=stream)
    logging.getLogger(ACCESS).info("hidden")
    assert len(lines_of(stream)) == 2


def test_text_lines_escape_what_a_client_wrote_but_keep_a_traceback(service, restore_logging):
    stream = io.StringIO()
    configure_logging("info", "text", stream=stream)
    service.client.simulate_get("/images/abc\n2026-01-01 00:00:00,000 ERROR forged\x00\r\u2028\x1b[2J")
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        logging.getLogger("pixline.test").exception("failed on %s", "x\ny")
    lines = lines_of(stream)
    assert not [line for line in lines if "forged" in line and not line[:4].isdigit()], lines
    assert any("abc\\n2026-01-01 00:00:00,000 ERROR forged\\x00\\r\\u2028\\x1b[2J" in line for line in lines)
    start = next(i for i, line in enumerate(lines) if "failed on x\\ny" in line)
    assert lines[start + 1] == "Traceback (most recent call last):" and lines[-1] == "RuntimeError: a bug"
