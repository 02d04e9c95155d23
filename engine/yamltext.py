"""The one YAML loader for text pixline is sent: recipe files, the playground's body, the config file.

Any of them may be hostile (docs/security.md, "YAML a client sends"), so the loader bounds the work
before it is done, and refuses as a :class:`~pixline.engine.errors.RecipeError` naming the line:

- the text: at most :data:`MAX_DOCUMENT_CHARS` characters, one document;
- nesting: at most :data:`MAX_DEPTH` collections deep, counted as nodes are composed (before a
  ``RecursionError`` could happen);
- size: at most :data:`MAX_NODES` nodes **with every alias expanded**, counted as nodes are composed.
  An alias costs the size of what it names, so the "billion laughs" (``&a [lol, lol]``,
  ``&b [*a, *a]``, …) is refused after a few hundred bytes, while a recipe may still name a
  parameter set once (``&box {...}``) and reuse it. An alias to a collection it is inside (a cycle)
  is refused;
- values: only what a recipe is made of (text, integers, floats, true/false, null, lists,
  mappings). Dates, ``!!binary``, ``!!set``, ``!!omap``, ``!!python/…`` and every other tag are
  refused; a number is at most :data:`MAX_NUMBER_CHARS` characters before it is converted; a float
  is finite (``.nan``, ``.inf``, ``1.0e999`` are refused); a scalar that does not convert
  (``!!int '0x'``, ``!!float x``) is refused.

libyaml (``CParser``) scans and parses when it is installed; composing stays in Python, where the
bounds are kept, and keeps every node's line for the recipe's error messages.
"""
from __future__ import annotations

import math
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import Resolver

from .errors import RecipeError, quote

MAX_DOCUMENT_CHARS = 64 * 1024
MAX_DEPTH = 64
MAX_NODES = 5_000
MAX_NUMBER_CHARS = 32
TAG = "tag:yaml.org,2002:"

#: yaml's own reader, scanner and parser, in Python.
PYTHON_PARSING: tuple[type, ...] = (yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser)
try:
    from yaml.cyaml import CParser
    #: libyaml's parser when it is installed (40 times faster), else yaml's own.
    _PARSING: tuple[type, ...] = (CParser,)
except ImportError:  # a PyYAML built without libyaml
    _PARSING = PYTHON_PARSING


class LimitError(yaml.MarkedYAMLError):
    """The text is over one of the loader's bounds (raised with the mark of where it went over)."""


class RefusedValue(ConstructorError):
    """A value that is valid YAML but no recipe value: a date, a tag, a long or non-finite number."""


class BoundedComposer(Composer):
    """yaml's composer, counting depth and expanded nodes as it goes."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.expanded = 0  # nodes so far, each alias counted as the size of what it names
        self.sizes: dict[str, int] = {}  # anchor → its node's expanded size, once composed

    def spend(self, nodes: int, mark: Any) -> None:
        self.expanded += nodes
        if self.expanded > MAX_NODES:
            raise LimitError(None, None, f"more than {MAX_NODES} values, counting each alias as what it "
                             "names: write the recipe without so many repeats", mark)

    def compose_node(self, parent: Any, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)  # an undefined alias is yaml's error
            if event.anchor not in self.sizes:
                raise LimitError(None, None, f"alias {quote('*' + event.anchor, 40)} is inside the value "
                                 "it names (a cycle)", event.start_mark)
            self.spend(self.sizes[event.anchor], event.start_mark)
            return node
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitError(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        before = self.expanded
        self.spend(1, event.start_mark)
        node = super().compose_node(parent, index)
        self.depth -= 1
        if event.anchor is not None:
            self.sizes[event.anchor] = self.expanded - before
        return node


class RecipeConstructor(SafeConstructor):
    """Constructs only what a recipe is made of (:data:`ALLOWED_TAGS`), with numbers bounded and
    finite; any other tag is refused."""

    yaml_constructors: dict = {}

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, ArithmeticError, LookupError) as exc:  # !!int '0x', !!bool maybe
            raise RefusedValue(None, None, f"{_tag_name(node.tag)} {quote(node.value)} cannot be read: "
                                   f"{quote(str(exc))}", node.start_mark) from None

    def construct_bounded_int(self, node: yaml.Node) -> int:
        _check_number_length(node)
        return self.construct_yaml_int(node)

    def construct_finite_float(self, node: yaml.Node) -> float:
        _check_number_length(node)
        value = self.construct_yaml_float(node)
        if not math.isfinite(value):
            raise RefusedValue(None, None, f"{quote(node.value)} is not a finite number "
                                   "(.nan and .inf are not recipe values)", node.start_mark)
        return value

    def construct_refused(self, node: yaml.Node) -> None:
        if node.tag == TAG + "timestamp":
            problem = f"{quote(node.value)} reads as a date, which no recipe value is: quote it to write text"
        else:
            problem = (f"the tag {_tag_name(node.tag)} is not a recipe value (values are text, numbers, "
                       "true/false, null, lists and mappings)")
        raise RefusedValue(None, None, problem, node.start_mark)


#: What a recipe is made of: the only tags the loader constructs.
ALLOWED_TAGS = {"null": SafeConstructor.construct_yaml_null, "bool": SafeConstructor.construct_yaml_bool,
                "int": RecipeConstructor.construct_bounded_int,
                "float": RecipeConstructor.construct_finite_float,
                "str": SafeConstructor.construct_yaml_str, "seq": SafeConstructor.construct_yaml_seq,
                "map": SafeConstructor.construct_yaml_map}
for _tag, _construct in ALLOWED_TAGS.items():
    RecipeConstructor.add_constructor(TAG + _tag, _construct)
RecipeConstructor.add_constructor(None, RecipeConstructor.construct_refused)


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(TAG):] if tag.startswith(TAG) else quote(tag, 60)


def _check_number_length(node: yaml.Node) -> None:
    if len(node.value) > MAX_NUMBER_CHARS:
        raise RefusedValue(None, None, f"a number of {len(node.value)} characters; at most "
                               f"{MAX_NUMBER_CHARS} are read", node.start_mark)


def loader_class(parsing: tuple[type, ...] = _PARSING) -> type:
    """The bounded loader over ``parsing``: libyaml's ``CParser``, or yaml's own reader, scanner and
    parser (tests try both)."""

    class RecipeLoader(BoundedComposer, *parsing, RecipeConstructor, Resolver):  # type: ignore[misc]
        def __init__(self, text: str) -> None:
            if len(parsing) == 1:
                parsing[0].__init__(self, text)
            else:
                reader, scanner, parser = parsing
                reader.__init__(self, text)
                scanner.__init__(self)
                parser.__init__(self)
            BoundedComposer.__init__(self)
            RecipeConstructor.__init__(self)
            Resolver.__init__(self)

    return RecipeLoader


RecipeLoader = loader_class()


def parse(text: str, origin: str = "<text>") -> tuple[yaml.Node | None, Any]:
    """The node tree (with each node's line) and the data of one YAML document, within the bounds.

    Raises :class:`RecipeError` with ``line`` for text that is not valid YAML or over a bound.
    """
    if len(text) > MAX_DOCUMENT_CHARS:
        raise RecipeError(f"{origin}: {len(text)} characters of YAML; at most {MAX_DOCUMENT_CHARS} are read")
    loader = RecipeLoader(text)
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        where = f" (line {line})" if line else ""
        kind = ("over a limit of YAML text: " if isinstance(exc, LimitError) else
                "" if isinstance(exc, RefusedValue) else "not valid YAML: ")
        problem = "; ".join(filter(None, (getattr(exc, "context", None), getattr(exc, "problem", None))))
        problem = problem or str(exc)
        raise RecipeError(f"{origin}{where}: {kind}{problem[:300]}", line=line) from None
    finally:
        loader.dispose()
