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
