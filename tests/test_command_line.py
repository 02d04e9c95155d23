"""The command line itself: ``--version``, ``--help`` with examples on every command, the log flags
before or after the command, and the documented exit codes."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pixline
from pixline.engine import testing
from pixline.engine.storage import Store
from pixline.server.commands import cli

PIXLINE = [sys.executable, "-m", "pixline.server.commands"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PIXLINE, *args], capture_output=True, text=True, timeout=120)


def commands() -> dict:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices


def test_version_names_pixline_libvips_and_python():
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"pixline {pixline.__version__} (libvips 8.")
    assert "Python 3." in result.stdout


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_command_has_help_with_an_example(name):
    text = commands()[name].format_help()
    assert "examples:" in text and f"  pixline {name}" in text, text
    assert "--log-level" in text and "--log-format" in text


def test_the_top_level_help_documents_the_exit_codes():
    result = run("--help")
    assert result.returncode == 0
    for code in ("0 ", "1 ", "2 ", "70 ", "130 ", "141 "):
        assert f"\n  {code}" in result.stdout


def test_log_flags_go_before_or_after_the_command_and_after_wins():
    parse = cli.build_parser().parse_args
    assert parse(["--log-level", "debug", "recipes"]).log_level == "debug"  # not reset by the command
    assert parse(["recipes", "--log-level", "info"]).log_level == "info"
    assert parse(["--log-level", "debug", "recipes", "--log-level", "error"]).log_level == "error"
    assert parse(["serve", "--log-format", "json"]).log_format == "json"
    assert parse(["recipes"]).log_level is None  # unset: PIXLINE_LOG_LEVEL, the config file, the default


def test_serve_takes_log_level_after_the_command():
    # It used to fail with "unrecognized arguments"; an invalid level is now the settings' error.
    result = run("serve", "--log-level", "loud", "--bind", "127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr.strip() == "pixline: error: log level 'loud' is not one of debug, info, warning, error"
    assert run("recipes", "--log-level", "info").returncode == 0


def test_a_bad_command_line_exits_2_and_a_bug_exits_70_with_its_traceback(monkeypatch, capsys):
    assert run("nonsense").returncode == 2
    assert run("--log-format", "xml", "recipes").returncode == 2

    def broken(args):
        raise RuntimeError("a bug in a command")

    monkeypatch.setattr("pixline.server.commands.plugins.run", broken)
    assert cli.main(["plugins", "--log-format", "text"]) == 70
    err = capsys.readouterr().err
    assert "internal error" in err and "Traceback" in err and "RuntimeError: a bug in a command" in err


def test_a_reader_that_goes_away_is_not_a_bug():
    # Like `pixline recipes | head -1`, made certain: `true` exits before pixline has started, so the
    # pipe is closed when pixline writes.
    shell = f"{' '.join(PIXLINE)} recipes | true"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 141, result.stderr
    assert "Traceback" not in result.stderr and "internal" not in result.stderr


def test_a_command_logs_json_when_stderr_is_not_a_terminal(tmp_path, photo_bytes):
    # pixline regenerate renders in process: one job line per image, as JSON (stderr is a pipe here).
    store = Store(f"file://{tmp_path / 'data'}")
    data = testing.jpeg_bytes(testing.gradient(200, 150))
    from pixline.engine.source import content_id

    store.put_original(content_id(data), data, {"id": content_id(data), "format": "jpeg", "width": 200,
                                                "height": 150, "bytes": len(data), "fields": {}})
    result = run("regenerate", "thumb", "--store", f"file://{tmp_path / 'data'}")
    assert result.returncode == 0, result.stderr
    jobs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    job, = [j for j in jobs if j["logger"] == "pixline.jobs"]
    assert (job["image_id"], job["recipes"], job["outcome"], job["attempt"]) == (
        content_id(data), ["thumb"], "done", 1)
    assert job["level"] == "INFO" and job["duration_ms"] > 0 and "time" in job


def test_regenerate_analyse_gives_images_taken_in_earlier_what_the_installed_analysers_find(tmp_path):
    # An image stored without analyses (taken in before pixline-placeholders was installed).
    store = Store(f"file://{tmp_path / 'data'}")
    data = testing.jpeg_bytes(testing.gradient(200, 150))
    from pixline.engine.source import Source, content_id

    image_id = content_id(data)
    store.put_original(image_id, data, {**Source(data).describe(), "id": image_id, "fields": {}})
    assert "analysis" not in store.get_meta(image_id)
    where = ("--store", f"file://{tmp_path / 'data'}")
    dry = run("regenerate", "--analyse", "--dry-run", *where)
    assert dry.returncode == 0 and dry.stdout == "would analyse 1 image(s) lacking an installed analyser's result\n"
    assert "analysis" not in store.get_meta(image_id)  # a dry run writes nothing
    done = run("regenerate", "--analyse", *where)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "analysed 1 of 1 image(s) lacking an installed analyser's result\n"
    meta = store.get_meta(image_id)
    assert meta["analysis"]["colour"]["value"].startswith("#") and "blurhash" in meta["analysis"]
    assert run("regenerate", "--analyse", "--dry-run", *where).stdout.startswith("would analyse 0 image(s)")
    refused = run("regenerate", "thumb", "--analyse", *where)
    assert refused.returncode != 0 and "give it no recipe" in refused.stderr


def test_every_flag_of_every_command_says_what_it_does():
    """`pixline serve --help` once listed 40 flags with nothing but their variable: each flag now has
    a line of help (and a setting's flag its default and unit, under its group)."""
    import argparse
    import re

    from pixline.server.commands.cli import build_parser
    from pixline.server.settings import GROUPS, Settings

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert len(commands) == len(__import__("pixline.server.commands.cli", fromlist=["COMMANDS"]).COMMANDS)
    bare = []
    for name, command in commands.items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            words = re.sub(r"\(?PIXLINE_\w+[^)]*\)?", "", action.help or "").strip(" ();,")
            if len(words.split()) < 2:
                bare.append(f"{name} {'/'.join(action.option_strings) or action.dest}: {action.help!r}")
        groups = {g.title for g in command._action_groups}
        for action in command._actions:
            setting = Settings.__dataclass_fields__.get(action.dest)
            if setting is not None and action.option_strings and action.dest not in ("log_level", "log_format"):
                assert "default" in action.help, (name, action.dest, action.help)
                assert setting.metadata["group"] in groups & set(GROUPS), (name, action.dest)
    assert not bare, "flags without help:\n" + "\n".join(bare)
    for name, setting in Settings.__dataclass_fields__.items():
        assert setting.metadata.get("help") and setting.metadata.get("group") in GROUPS, name
