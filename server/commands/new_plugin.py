"""``pixline new-plugin NAME``: write a working plugin distribution to start from.

``pixline-NAME/`` gets a ``setup.cfg`` with the entry point, a ``pyproject.toml``, a README, the package
``pixline_NAME`` with a step called NAME that leaves the image alone (the place to write ``apply``),
and tests that run it over every colour shape, alone and in recipes that render to bytes, with the
fixtures of pixline's pytest plugin. They pass as written; docs/plugins.md says the rest.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pixline.engine.errors import ParameterError, PixlineError
from pixline.engine.steps import NAME_RE, NAME_RULE

SETUP_CFG = """\
[metadata]
name = pixline-{name}
version = 0.1.0
description = pixline plugin: the {name} step
long_description = file: README.md
long_description_content_type = text/markdown

[options]
python_requires = >=3.10
packages = {module}
install_requires = pixline

[options.extras_require]
# pixline-format: the encoders the tests' recipes render through
test =
    pytest
    pixline-format

[options.entry_points]
pixline =
    {name} = {module}
"""

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"
"""

README = """\
# pixline-{name}

The `{name}` step for pixline.

```yaml
steps:
  - resize: {{width: 800}}
  - {name}: {{amount: 0.5}}
  - format: {{type: auto}}
```

Ad-hoc URLs: `{name}:a=0.5`.

| parameter | values | default | URL key | meaning |
| --- | --- | --- | --- | --- |
| `amount` | 0‥1 | `1.0` | `a` | how much of the effect to apply |

```sh
pip install -e '.[test]'
pytest
pixline plugins      # lists pixline-{name}
```

How to write a plugin: pixline's docs/plugins.md.
"""

MODULE = '''\
"""The ``{name}`` step for pixline.  Recipe: ``- {name}: {{amount: 0.5}}``; URL: ``{name}:a=0.5``."""
from __future__ import annotations

import pydantic
import pyvips

from pixline.engine import Context, Step, StepParams, hookimpl


class {cls}(Step):
    """Describe what the step does here."""

    name = "{name}"
    version = "1"  # part of every recipe digest: bump it when the output changes

    class Params(StepParams):
        url_keys = {{"a": "amount"}}
        amount: float = pydantic.Field(default=1.0, ge=0, le=1)

    def apply(self, image: pyvips.Image, params: Params, ctx: Context) -> pyvips.Image:
        # ``image`` is normal: 8-bit sRGB, 3 colour bands plus alpha as band 4 when it has one.
        # Build on it lazily and return the result; pixels are computed once, by the encoder.
        return image


@hookimpl
def pixline_register_steps(register):
    register({cls})
'''

TEST = '''\
\"\"\"The {name} step's tests. The fixtures (rendered_image, render_recipe, colour_shape,
assert_decodes) come from pixline's pytest plugin: docs/plugins.md, "Testing".\"\"\"
import pytest

import {module}
from pixline import testing
from pixline.engine import RecipeError


@pytest.fixture(scope="session")
def pixline_registry():
    # This plugin alone, plus pixline-format's encoders so a recipe renders to bytes: the tests do
    # not depend on what else is installed (without this fixture: every installed plugin).
    return testing.plugin_registry({module}, "{name}")


def test_every_colour_shape(rendered_image, colour_shape):
    # colour_shape: grey, grey-alpha, rgb, rgba, 16-bit, CMYK, animated… (one run each)
    out = rendered_image([{{"{name}": {{}}}}], colour_shape)
    original = testing.normal_input(colour_shape)  # what the step is given
    assert (out.width, out.height, out.bands) == (original.width, original.height, original.bands)
    # Say what the step does to the pixels, e.g. compared with the original on the 0-255 scale:
    assert testing.mean_abs_diff(out, original) < 1


@pytest.mark.parametrize("format", ["jpeg", "png", "webp"])
def test_a_recipe_with_the_step_renders(render_recipe, assert_decodes, colour_shape, format):
    out = render_recipe([{{"{name}": {{"amount": 0.5}}}}, {{"format": {{"type": format}}}}], colour_shape)
    assert_decodes(out)  # the bytes decode whole, as the format, size and frames the render says


@pytest.mark.parametrize("amount", [-0.1, 1.5, "much", True])
def test_a_bad_amount_names_the_step_and_the_parameter(pixline_registry, amount):
    with pytest.raises(RecipeError, match=r"step 1 \\({name}\\): parameter 'amount'"):
        testing.recipe(pixline_registry, [{{"{name}": {{"amount": amount}}}}])
'''


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("new-plugin", help="write a plugin distribution to start from: pixline-NAME/",
                       epilog="""\
examples:
  pixline new-plugin sepia                  # writes pixline-sepia/ here: a step, its tests, a README
  pixline new-plugin sepia --dir plugins    # then: pip install -e plugins/pixline-sepia
""", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help=f"the step's name ({NAME_RULE})")
    p.add_argument("--dir", default=".", help="where to create pixline-NAME/ (default: here)")
    p.set_defaults(func=run)


def files(name: str) -> dict[str, str]:
    """Relative path → text of the distribution for step ``name``."""
    if not NAME_RE.fullmatch(name):
        raise ParameterError(f"plugin name {name!r} is not valid: use {NAME_RULE}")
    module = f"pixline_{name.replace('-', '_')}"
    cls = "".join(part.capitalize() for part in name.replace("-", "_").split("_"))
    values = {"name": name, "module": module, "cls": cls}
    return {
        "setup.cfg": SETUP_CFG.format(**values),
        "pyproject.toml": PYPROJECT,
        "README.md": README.format(**values),
        f"{module}/__init__.py": MODULE.format(**values),
        f"tests/test_{module.removeprefix('pixline_')}.py": TEST.format(**values),
    }


def run(args: argparse.Namespace) -> int:
    contents = files(args.name)
    target = Path(args.dir) / f"pixline-{args.name}"
    if target.exists():
        raise PixlineError(f"{target} already exists: choose another name or folder")
    try:
        for path, text in contents.items():
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            (target / path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PixlineError(f"{target}: cannot write the plugin: {exc.strerror}") from None
    print(f"{target}: the {args.name!r} step; next: pip install -e '{target}[test]' && pytest {target}")
    return 0
