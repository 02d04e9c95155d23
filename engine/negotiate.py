"""Choosing the output encoder: the recipe's spec, the client's ``Accept`` header, the source."""
from __future__ import annotations

from .registry import Registry
from .steps import Encoder, OutputSpec

#: Formats a browser can show; any other source format is re-encoded as JPEG (PNG with alpha).
WEB_FORMATS = ("jpeg", "png", "webp", "avif", "gif")


def accepted_types(accept: str | None) -> dict[str, float]:
    """Media types explicitly named in an ``Accept`` header, with their q-values."""
    types: dict[str, float] = {}
    for part in (accept or "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        if not media:
            continue
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        types[media.lower()] = q
    return types


#: What ``auto`` and ``source`` fall back to: JPEG, or PNG when the image has alpha.
FALLBACKS = ("jpeg", "png")


def fallback_format(has_alpha: bool, registry: Registry) -> str:
    return "png" if has_alpha and "png" in registry.encoders else "jpeg"


def possible_encoders(spec: OutputSpec, registry: Registry) -> list[str]:
    """Every installed encoder :func:`choose_encoder` can pick for ``spec``, whatever the request.

    ``auto``: its candidates and the fallbacks; ``source``: the web formats and the fallbacks; a
    named format: that one. Sorted; encoders that are not installed are left out.
    """
    if spec.format == "auto":
        names = set(spec.candidates) | set(FALLBACKS)
    elif spec.format == "source":
        names = set(WEB_FORMATS) | set(FALLBACKS)
    else:
        names = {spec.format}
    return sorted(name for name in names if name in registry.encoders)


def choose_encoder(spec: OutputSpec, registry: Registry, accept: str | None = None,
                   source_format: str | None = None, has_alpha: bool = False) -> Encoder:
    """The encoder for a render.

    ``auto`` takes the first of ``spec.candidates`` that the client names in ``Accept`` with q > 0
    (like imgproxy, a wildcard does not count: browsers send ``*/*`` for everything), falling back to
    JPEG (PNG when the source has alpha). ``source`` keeps the source's format when browsers show it.
    """
    if spec.format == "auto":
        accepted = accepted_types(accept)
        for name in spec.candidates:
            encoder = registry.encoders.get(name)
            if encoder is not None and accepted.get(encoder.media_type, 0.0) > 0:
                return encoder
        return registry.encoder(fallback_format(has_alpha, registry))
    if spec.format == "source":
        if source_format in WEB_FORMATS and source_format in registry.encoders:
            return registry.encoder(source_format)
        return registry.encoder(fallback_format(has_alpha, registry))
    return registry.encoder(spec.format)
