"""The plugin guide's examples (docs/plugins.md), as files: code blocks whose first line is a
comment naming a file (``# pixline_sepia/__init__.py``). Tests run them, so the guide cannot rot."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
BLOCK_RE = re.compile(r"^```[a-z]*\n# ([\w./-]+\.(?:py|cfg|toml|yaml))\n(.*?)^```$", re.M | re.S)


def files() -> dict[str, str]:
    """Path → text of every named code block of the guide (without the naming comment line)."""
    return {path: text for path, text in BLOCK_RE.findall(GUIDE.read_text())}


def write(root: Path, *paths: str) -> Path:
    """Write the named files of the guide under ``root``; returns ``root``."""
    blocks = files()
    for path in paths:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(blocks[path])
    return root


def module(path: str, name: str) -> ModuleType:
    """Import the guide's ``path`` as module ``name`` (without installing anything)."""
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # pydantic resolves a model's annotations through its module
    exec(compile(files()[path], f"docs/plugins.md:{path}", "exec"), mod.__dict__)
    return mod
