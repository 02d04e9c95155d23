"""Hostile recipe text (issue 18, sections 1 and 4): alias bombs in every place a recipe error quotes
a value, deep nesting, numbers and tags PyYAML cannot or should not convert, values that become NaN;
and hostile ad-hoc URL steps of the same classes. Each one must be a 400 (or the command line's one
line) that names the line where there is one, small, and cheap.
"""
from __future__ import annotations

import base64

#: Ten levels of nine-way aliases: 9**10 'lol's once expanded (the issue's 505-byte body).
LEVELS = 10
#: Three levels of nine long words: 729 words, under the loader's node budget, 730 KB as a repr. A
#: recipe error that quoted it whole would answer (and log) that much.
WIDE = (3, "x" * 1000)


def laughs(levels: int = LEVELS, word: str = "lol") -> str:
    """The billion laughs as one flow value: ``&a2 [&a1 [&a0 [lol × 9], *a0 × 8], *a1 × 8]``."""
    text = f"&a0 [{', '.join([word] * 9)}]"
    for i in range(1, levels):
        text = f"&a{i} [{', '.join([text] + [f'*a{i - 1}'] * 8)}]"
    return text


#: Where a recipe error quotes a value: each holds the bomb ``{v}``, with the line it is on.
PLACES: dict[str, tuple[str, int]] = {
    "description": ("description: {v}\nsteps: [grayscale]\n", 1),
    "eager": ("steps: [grayscale]\neager: {v}\n", 2),
    "keep_metadata": ("steps: [grayscale]\nkeep_metadata: {v}\n", 2),
    "step-item": ("steps:\n  - grayscale\n  - {v}\n", 3),
    "step-params": ("steps:\n  - resize: {v}\n", 2),
    "crop-box": ("steps:\n  - crop: {{left: {v}, top: 0, width: 5, height: 5}}\n", 2),
    "nested": ("steps:\n  - resize: {{width: 10, background: {{deep: [{v}]}}}}\n", 2),
    "step-name": ("steps:\n  - {{? {v} : {{}}}}\n", 2),
    "top-key": ("steps: [grayscale]\n? {v}\n: 1\n", 2),
    "merge": ("steps:\n  - resize: {{<<: {{width: {v}}}}}\n", 2),
}

#: Text → the words its one-line error must hold, and the line it must name (None: line 1 or none).
CASES: dict[str, tuple[str, str, int | None]] = {
    # Refused while composing: the words are the loader's, the line is where the budget ran out.
    **{f"bomb-{place}": (text.format(v=laughs()), "more than 5000 values", line)
       for place, (text, line) in PLACES.items()},
    # Under the budget: refused by the recipe's own checks, which quote the value bounded.
    **{f"wide-{place}": (text.format(v=laughs(*WIDE)), "", line) for place, (text, line) in PLACES.items()},
    # The 367-byte variant: eight levels in a step's parameters (39 MB of error message).
    "bomb-small": ("steps:\n  - resize: " + laughs(8) + "\n", "more than 5000 values", 2),
    "deep-flow": ("steps: " + "[" * 30_000 + "]" * 30_000, "", 1),
    "deep-map": ("steps:\n  - resize: " + "{a: " * 13_000 + "1" + "}" * 13_000, "", 2),
    "deep-block": ("steps:\n" + "".join("  " * i + "- \n" for i in range(1, 200)) + "  " * 200 + "- 1\n",
                   "nested more than 64 levels", None),
    "deep-64k": ("description: x\nsteps:\n  - resize: " + "[" * 32_000, "", 3),
    "long-int": ("steps:\n  - resize: {width: " + "9" * 5000 + "}\n", "a number of 5000 characters", 2),
    "long-sexagesimal": ("steps:\n  - resize: {width: " + ":".join(["59"] * 5000) + "}\n", "at most 32", 2),
    "bad-date": ("description: x\nsteps:\n  - resize: {width: 2001-02-30}\n", "reads as a date", 3),
    "date-description": ("description: 2001-02-30\nsteps: [grayscale]\n", "reads as a date", 1),
    "timestamp": ("steps:\n  - grayscale\neager: 2001-12-14t21:59:43.10-05:00\n", "reads as a date", 3),
    "float-x": ("steps:\n  - sharpen: {sigma: !!float 'x'}\n", "!!float 'x' cannot be read", 2),
    "int-0x": ("steps:\n  - resize: {width: !!int '0x'}\n", "!!int '0x' cannot be read", 2),
    "binary": ("steps:\n  - resize: {width: !!binary aGVsbG8=}\n", "the tag !!binary", 2),
    "set": ("description: !!set {a, b}\nsteps: [grayscale]\n", "the tag !!set", 1),
    "python": ("steps:\n  - !!python/object/apply:os.system [echo hi]\n", "!!python/object/apply", 2),
    "custom-tag": ("steps:\n  - resize: !wide {width: 5}\n", "the tag '!wide'", 2),
    "nan": ("steps:\n  - sharpen: {sigma: .nan}\n", "not a finite number", 2),
    "inf": ("steps:\n  - adjust: {contrast: -.inf}\n", "not a finite number", 2),
    "huge-float": ("steps:\n  - blur: {sigma: 1.0e+999}\n", "not a finite number", 2),
    "nan-aspect": ('description: x\nsteps:\n  - crop: {aspect: "' + "9" * 400 + ":" + "9" * 400 + '"}\n',
                   "is not an aspect ratio", 3),
    "cycle": ("steps: &s\n  - resize: *s\n", "a cycle", 2),
    # A key over 1024 characters is written as an explicit one (``? key``).
    "long-step-name": ("steps:\n  - ? " + "x" * 60_000 + "\n    : {}\n", "unknown step", 2),
    "long-param-name": ("steps:\n  - resize:\n      ? " + "w" * 60_000 + "\n      : 1\n", "unknown parameter", 3),
    "many-params": ("steps:\n  - resize: {" + ", ".join(f"p{i}: 1" for i in range(2000)) + "}\n",
                    "and 1995 more", 2),
    "long-description-type": ("description: [" + "'" + "x" * 60_000 + "']\nsteps: [grayscale]\n",
                              "'description' must be a str", 1),
}


def b64(text: str) -> str:
    return "b64:" + base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


#: Ad-hoc URL steps of the same classes → words of their 400's detail.
URL_CASES: dict[str, tuple[str, str]] = {
    "nan-aspect": ("crop:aspect=" + b64("9" * 400 + ":" + "9" * 400), "is not an aspect ratio"),
    "inf-aspect": ("crop:aspect=" + b64("1" + "0" * 300 + ":1"), "is not an aspect ratio"),
    "long-int": ("resize:w=" + "9" * 1500, "width"),
    "nan-float": ("sharpen:sigma=nan", "finite number"),
    "inf-float": ("adjust:contrast=-inf", "finite number"),
    "huge-float": ("blur:sigma=1e999", "finite number"),
    "nan-box": ("crop:left=nan,top=0,w=5,h=5", "not a number"),
    "long-text": ("watermark:text=" + b64("é" * 300), "at most 200 characters"),
    "long-colour": ("tint:colour=" + b64("#" + "f" * 1200), "is not a colour"),
    "long-key": ("resize:" + "k" * 31 + "=1", "unknown parameter"),
}
