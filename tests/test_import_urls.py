"""``pixline import`` of URLs (issue 19, 3): a file of https:// URLs, or keys of a URL ``--source``,
fetched from a real HTTPS origin on 127.0.0.2 (tests/sourceserver.py) only as the policy allows;
every refusal a report row with its reason and status and the one-line error, never a traceback."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from falcon.testing import TestClient

from pixline.engine.library import SourceRecord
from pixline.engine.storage import Store
from pixline.server.commands.wiring import make_derivatives
from pixline.server.http.app import create_app
from pixline.server.settings import Settings
from tests.sourceserver import ADDRESS, SourceServer
from tests.test_import import distinct_jpeg, pixline, stored_images, summary


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[SourceServer]:
    server = SourceServer(tmp_path)
    yield server
    server.stop()


def allowing(origin: SourceServer, *more: str) -> list[str]:
    """Flags that let the import fetch from the origin, and from no other non-public address."""
    return ["--allow-source-host", ADDRESS, "--allow-source-network", f"{ADDRESS}/32",
            "--source-ca-file", origin.ca_file, "--source-timeout", "2", *more]


def report(path: Path) -> dict[str, dict]:
    return {r["source_key"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_a_file_of_urls_is_taken_in_and_each_refusal_reported(tmp_path: Path, origin: SourceServer) -> None:
    good = [origin.put(f"img-{n}.jpg", distinct_jpeg(n)) for n in range(3)]
    port = origin.port
    bad = {
        origin.url("/redirect?to=https://127.0.0.1:%d/img/img-0.jpg" % port): (502, "loopback"),
        origin.url("/redirect?to=https://elsewhere.example.org/a.jpg"): (502, "not allowed"),
        f"https://localhost:{port}/img/img-0.jpg": (502, "resolves to 127.0.0.1, a loopback"),
        f"https://[::ffff:127.0.0.1]:{port}/img/img-0.jpg": (502, "canonical"),
        f"https://[::1]:{port}/img/img-0.jpg": (502, "loopback"),
        f"https://photos.example.org:{port}/img/img-0.jpg": (502, "not allowed"),
        f"https://2130706433:{port}/img/img-0.jpg": (502, "dotted-quad"),
        f"https://0177.0.0.1:{port}/img/img-0.jpg": (502, "dotted-quad"),
        f"https://0x7f.1:{port}/img/img-0.jpg": (502, "dotted-quad"),
        f"http://{ADDRESS}:{port}/img/img-0.jpg": (502, "allow-http-sources"),
        origin.url("/lying"): (413, "over the limit"),
        origin.url("/loop/0"): (502, "more than 3 redirects"),
        origin.url("/img/missing.jpg"): (404, "not found"),
        origin.url("/silent"): (504, "no answer within 2 s"),
        "not-a-url": (502, "only https"),
        "a line with spaces": (502, "spaces"),
    }
    (tmp_path / "urls.txt").write_text("\n".join([*good, *bad]) + "\n")
    store = tmp_path / "store"
    result = pixline("import", str(tmp_path / "urls.txt"), "--store", f"file://{store}", "--max-bytes", "200000",
                     "--report", str(tmp_path / "refused.jsonl"), "--ids", str(tmp_path / "ids.jsonl"),
                     # Loopback names allowed as hosts: what refuses them is their address.
                     *allowing(origin, "--allow-source-host", "127.0.0.1", "--allow-source-host", "localhost",
                               "--allow-source-host", "::1"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("pixline: error: 15 original(s) refused and 1 failed")
    counts = summary(result)
    assert (counts["imported"], counts["refused"], counts["failed"]) == (3, 15, 1)
    rows = report(tmp_path / "refused.jsonl")
    assert set(rows) == set(bad)
    for url, (status, reason) in bad.items():
        assert rows[url]["status"] == status and reason in rows[url]["reason"], rows[url]
        assert len(rows[url]["reason"]) < 400
    assert rows[origin.url("/silent")]["outcome"] == "failed"  # tried again on the next run
    ids = {r["source_key"]: r["id"] for r in map(json.loads, (tmp_path / "ids.jsonl").read_text().splitlines())}
    assert set(ids) == set(good) and set(ids.values()) == stored_images(store)
    s = Store(f"file://{store}")
    for url, image_id in ids.items():
        assert SourceRecord.find(s, url).image_id == image_id and s.get_meta(image_id)["source_key"] == url
    # The site asks which image a URL became, as for a key.
    settings = Settings(store=f"file://{store}")
    client = TestClient(create_app(make_derivatives(settings), settings, None))
    image, = client.simulate_get("/images", params={"source_key": good[1]}).json["images"]
    assert image["id"] == ids[good[1]] and image["source_key"] == good[1]
    bad_url = client.simulate_get("/images", params={"source_key": "https://user@x.example.com/a.jpg"})
    assert bad_url.status_code == 400 and "user name" in bad_url.json["detail"]


def test_keys_of_a_url_source(tmp_path: Path, origin: SourceServer) -> None:
    for n in range(2):
        origin.put(f"k{n}.jpg", distinct_jpeg(10 + n))
    store = tmp_path / "store"
    keys = "k0.jpg\nk1.jpg\n../k0.jpg\nmissing.jpg\n"
    result = pixline("import", "-", "--source", origin.url("/img/"), "--store", f"file://{store}",
                     "--report", str(tmp_path / "refused.jsonl"), *allowing(origin), stdin=keys)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert summary(result)["imported"] == 2
    assert {k: r["status"] for k, r in report(tmp_path / "refused.jsonl").items()} == {
        "../k0.jpg": 400, "missing.jpg": 404}
    # Again: a key list has no versions, so each is read again; its bytes are stored already.
    again = pixline("import", "-", "--source", origin.url("/img/"), "--store", f"file://{store}",
                    *allowing(origin), stdin="k0.jpg\nk1.jpg\n")
    assert again.returncode == 0 and summary(again)["imported"] == 0


@pytest.mark.parametrize("args,message", [
    (["{prefix}"], "cannot be listed; import a file of its keys"),
    (["{prefix}", "--allow-source-host", "elsewhere.example.org"], "is not allowed"),
    (["-", "--source", "{prefix}"], "fetching from URLs is off; --allow-source-host HOST"),
    (["-"], "a file of URLs needs --allow-source-host HOST"),
])
def test_what_cannot_be_imported_says_so_on_one_line(tmp_path: Path, origin: SourceServer, args: list[str],
                                                     message: str) -> None:
    given = [a.format(prefix=origin.url("/img/")) for a in args]
    flags = allowing(origin) if "cannot be listed" in message else []
    result = pixline("import", *given, *flags, "--store", f"file://{tmp_path / 'store'}", stdin="x.jpg\n")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
