"""``pixline serve`` as a real process logs one JSON line per request, with the request id the response
echoes, and nothing twice (gunicorn's access log is off; its error log is in the same format)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixline.engine import testing

from .test_gunicorn import TOKEN, pixline_serve, upload

pytestmark = pytest.mark.slow


def test_serve_logs_one_json_line_per_request_with_its_request_id(tmp_path: Path) -> None:
    small = testing.jpeg_bytes(testing.gradient(160, 120))
    with pixline_serve(tmp_path, "--store", f"file://{tmp_path / 'data'}", "--upload-token", TOKEN,
                       "--log-level", "warning") as (client, _):
        status, body = upload(client, small, **{"X-Request-ID": "req-upload"})
        assert status == 201
        status, headers, _ = client.request("GET", f"/r/thumb/{body['id']}",
                                            headers={"X-Request-ID": "req-thumb"})
        assert status == 200 and headers["x-request-id"] == "req-thumb"
        status, headers, _ = client.request("GET", "/images/not-an-id")
        assert status == 400 and len(headers["x-request-id"]) == 32
        made = headers["x-request-id"]
    text = (tmp_path / "serve.log").read_text()
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = {r["request_id"]: r for r in records if r["logger"] == "pixline.access"}
    assert len([r for r in records if r["logger"] == "pixline.access"]) == len(access)  # once each
    assert (access["req-upload"]["status"], access["req-upload"]["route"]) == (201, "/images")
    thumb = access["req-thumb"]
    assert (thumb["recipe"], thumb["image_id"], thumb["status"]) == ("thumb", body["id"], 200)
    assert thumb["bytes"] > 0 and isinstance(thumb["rendered"], bool)
    assert access[made]["status"] == 400
    assert not [r for r in records if r["logger"] == "gunicorn.access"] and 'HTTP/1.1"' not in text, (
        "gunicorn's access log is on as well: every request logged twice")
    # Everything but serve's own start-up line on stdout is JSON (stderr is a file, not a terminal).
    others = [line for line in text.splitlines() if line and not line.startswith("{")]
    assert others == [line for line in others if line.startswith("pixline: serving")], others


def test_the_text_log_keeps_a_client_s_control_characters_on_its_line(tmp_path: Path) -> None:
    # %0A in a path or an id once wrote a forged line into the text log, %00 a raw NUL.
    forged = "2026-01-01%2000:00:00,000%20ERROR%20pixline:%20forged"
    with pixline_serve(tmp_path, "--store", f"file://{tmp_path / 'data'}", "--upload-token", TOKEN,
                       "--log-format", "text", "--log-level", "info") as (client, _):
        for path in (f"/images/abc%0A{forged}", f"/r/thumb/abc%0D%0A{forged}", "/images/a%00b",
                     f"/r/no-such%0A{forged}/0123", "/images/x%E2%80%A8y"):
            status, _, _ = client.request("GET", path)
            assert status in (400, 404), (path, status)
    text = (tmp_path / "serve.log").read_text(errors="strict")
    assert "\x00" not in text and "\u2028" not in text and "\r" not in text
    lines = [line for line in text.splitlines() if line and not line.startswith("pixline: serving")]
    assert lines and all(line[:4].isdigit() for line in lines), [
        line for line in lines if not line[:4].isdigit()]
    assert not [line for line in lines if line.startswith("2026-01-01")], "a forged line was written"
    assert "abc\\n2026-01-01" in text and "a\\x00b" in text
