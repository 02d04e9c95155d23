"""Hostile recipe text and URL steps (issue 18, sections 1 and 4) through every way in: the playground
(``POST /playground``), a recipe folder (``pixline recipes --recipes DIR``, which ``serve`` loads the
same way), the config file, a signed ad-hoc URL (``/t/``) and ``pixline sign``.

Each must be refused as the client's mistake (400 problem+json, or the command line's one line, exit
1) naming its line, with a small answer and small log lines, and cheaply: the peak of the memory
Python allocates while it is refused (tracemalloc) is bounded. The corpus is tests/hostile/yaml_corpus.py.
"""
from __future__ import annotations

import logging
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from falcon.testing import TestClient

from pixline.engine import testing
from pixline.server.commands.cli import main
from pixline.server.commands.logs import TEXT_FORMAT, TextFormatter
from pixline.server.commands.wiring import make_derivatives
from pixline.server.http.app import create_app
from pixline.server.http.signing import sign_path
from pixline.server.settings import Settings, SettingsError

from .yaml_corpus import CASES, URL_CASES

KEY = "yaml-suite-key"
#: The most an answer, a log line or an error line may carry.
MAX_BYTES = 4096
#: The most Python may allocate at once while refusing one case (the text itself is up to 64 KB).
PEAK_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestClient, str]:
    root = tmp_path_factory.mktemp("yaml")
    settings = Settings(store=f"file://{root / 'store'}", signing_key=[KEY])
    app = TestClient(create_app(make_derivatives(settings), settings, None))
    image_id = app.simulate_post("/images", body=testing.jpeg_bytes(testing.gradient(64, 48))).json["id"]
    return app, image_id


class Lines(logging.Handler):
    """Every log line written while it is installed, in the server's text format."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(TextFormatter(TEXT_FORMAT))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(self.format(record).splitlines())


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    handler, root = Lines(), logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def peak_of(call: Callable[[], Any]) -> tuple[Any, int]:
    """What ``call`` returns and the peak of what Python allocated meanwhile (bytes)."""
    tracemalloc.start()
    try:
        return call(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_small_400(result: Any, words: str, peak: int, lines: list[str]) -> dict[str, Any]:
    assert result.status_code == 400, result.text[:500]
    assert result.headers["content-type"] == "application/problem+json"
    assert len(result.content) < MAX_BYTES, len(result.content)
    assert words in result.json["detail"], result.json["detail"]
    assert peak < PEAK_BYTES, peak
    assert lines and all(len(line) < MAX_BYTES for line in lines), max(map(len, lines))
    assert not any("Traceback" in line for line in lines)
    return result.json


@pytest.mark.parametrize("case", CASES)
def test_the_playground_refuses_it_small_and_on_its_line(case: str, client: tuple[TestClient, str],
                                                         log_lines: list[str]) -> None:
    app, image_id = client
    text, words, line = CASES[case]
    result, peak = peak_of(lambda: app.simulate_post("/playground", params={"image": image_id}, body=text))
    body = assert_small_400(result, words, peak, log_lines)
    assert body["detail"].startswith("playground")
    if line is not None:
        assert body["line"] == line, body


def test_a_recipe_folder_reports_each_file_on_one_small_line(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    for case, (text, _, _) in CASES.items():
        (tmp_path / f"{case}.yaml").write_text(text)
    (tmp_path / "fine.yaml").write_text("steps:\n  - resize: {width: 10}\n")
    code, peak = peak_of(lambda: main(["recipes", "--recipes", str(tmp_path)]))
    out, err = capsys.readouterr()
    assert code == 1 and out.startswith("fine ")
    invalid = {line.split()[1].split("/")[-1].split(".")[0]: line for line in err.splitlines()
               if line.startswith("INVALID")}
    assert set(invalid) == set(CASES)
    for case, (_, words, line) in CASES.items():
        assert words in invalid[case] and len(invalid[case]) < MAX_BYTES, invalid[case][:300]
        if line is not None:
            assert f"(line {line})" in invalid[case] or "(line " not in invalid[case], invalid[case][:300]
    assert "Traceback" not in err and peak < PEAK_BYTES * 4  # every file of the folder at once


@pytest.mark.parametrize("case", ["bomb-description", "bomb-small", "deep-flow", "deep-block", "long-int",
                                  "bad-date", "float-x", "binary", "nan", "cycle"])
def test_the_config_file_is_read_with_the_same_bounds(case: str, tmp_path: Path) -> None:
    text, words, _ = CASES[case]
    path = tmp_path / "pixline.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError) as err:
        peak_of(lambda: Settings.load({"config": str(path)}, {}))
    assert str(err.value).startswith(f"config file {path}") and words in str(err.value)
    assert len(str(err.value)) < MAX_BYTES


@pytest.mark.parametrize("case", URL_CASES)
def test_an_adhoc_url_refuses_it_small(case: str, client: tuple[TestClient, str], log_lines: list[str]) -> None:
    app, image_id = client
    steps, words = URL_CASES[case]
    result, peak = peak_of(lambda: app.simulate_get(sign_path(f"{steps}/{image_id}", KEY)))
    assert assert_small_400(result, words, peak, log_lines)["detail"].startswith("ad-hoc URL")


@pytest.mark.parametrize("case", URL_CASES)
def test_pixline_sign_refuses_what_the_server_would(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    steps, words = URL_CASES[case]
    code = main(["sign", "--signing-key", KEY, f"{steps}/{'0' * 32}"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and len(err) < MAX_BYTES and words in err, err[:500]
