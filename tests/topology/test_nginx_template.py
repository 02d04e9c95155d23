"""The front's configuration against pixline's own timeouts (scripts/nginx.conf.template)."""
from __future__ import annotations

import re
from pathlib import Path

from pixline.server.http.connection import idle_seconds
from pixline.server.settings import Settings

TEMPLATE = Path(__file__).resolve().parents[2] / "scripts" / "nginx.conf.template"


def test_nginx_closes_idle_upstream_connections_before_pixline_does():
    # pixline closes a connection idle for idle_seconds(--header-timeout); nginx must drop its
    # kept-alive ones sooner, or a request sent down one as pixline closes it is reset and answered
    # 502 (seen in the cluster soak: an upload). tests/server/test_gunicorn.py checks that a
    # worker keeps an idle connection that long.
    text = TEMPLATE.read_text()
    upstreams = re.findall(r"upstream (\w+) \{(.*?)\}", text, flags=re.S)
    assert {name for name, _ in upstreams} == {"media", "resizers"}
    for name, body in upstreams:
        assert "keepalive " in body, name
        found = re.search(r"keepalive_timeout (\d+)s;", body)
        assert found and int(found.group(1)) < idle_seconds(Settings().header_timeout), name
