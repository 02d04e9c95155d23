"""The normalised image every step receives and every encoder encodes (docs/plugins.md, "The image").

An image is normal when it is upright, 8-bit (``uchar``), sRGB, three colour bands plus alpha as a
fourth band when it has one, and carries no ICC profile (its pixels are sRGB already; an image
without a profile is sRGB to browsers too). Whatever came in — grey (with or without alpha),
16-bit, CMYK with or without a profile, Adobe RGB or P3 with their profiles, palette PNGs, float
TIFFs — is converted once, right after the source is loaded, so a step written for 8-bit sRGB works
on every input.

Nothing here reads pixels or assumes a single frame: a multi-frame image in libvips' layout (frames
stacked vertically, ``page-height`` set) goes through band by band and keeps its ``page-height``.
"""
from __future__ import annotations

import pyvips

#: Part of every recipe digest: bump it when this module (or the pipeline around the steps, e.g.
#: alpha flattening) changes the pixels of any output, so stored derivatives are rendered again.
PIPELINE_VERSION = "2"

PROFILE = "icc-profile-data"


def is_normal(image: pyvips.Image) -> bool:
    """True when ``image`` is what a step may rely on (see the module docstring)."""
    return (image.format == "uchar" and image.interpretation == "srgb" and image.bands in (3, 4)
            and image.get_typeof(PROFILE) == 0 and not _needs_rotation(image))


def normalise(image: pyvips.Image, colour_managed: bool = False) -> pyvips.Image:
    """``image`` as a normal image: upright, 8-bit sRGB, 3 bands (+ alpha), no ICC profile.

    ``colour_managed`` says an ICC transform to sRGB was already done (libvips' ``thumbnail`` does
    one when given an output profile): the attached profile is then only dropped, not applied
    again. Lazy: nothing is computed until the pixels are read. A normal image is returned as is.
    """
    if is_normal(image):
        return image
    if _needs_rotation(image):
        image = image.autorot()
    image = _to_srgb(image, colour_managed)
    if image.bands > 4:  # extra channels beyond alpha (some TIFFs): keep colour and the first alpha
        image = image[:4]
    if image.get_typeof(PROFILE) != 0:
        image = image.copy()
        image.remove(PROFILE)  # the pixels are sRGB now: a later step must not convert them again
    return image


#: Interpretations of one colour band (grey): such an image holds grey, plus alpha at most.
GREY_INTERPRETATIONS = ("b-w", "grey16")


def mistagged(image: pyvips.Image) -> str | None:
    """Why normalising ``image`` would get its colours wrong, or ``None``.

    libvips reads an image by its ``interpretation``: three bands still tagged ``b-w`` (a step
    that built colour from a grey image, whose tag stays ``b-w``) are read as grey plus two alpha
    bands, so converting them to sRGB keeps band 1 as grey in three bands and the others as alpha:
    four bands, wrong colours, and no error. Only a step's result is checked (the pipeline names
    the step); an input with more bands than its colours is refused by the upload's band check.
    """
    if image.interpretation in GREY_INTERPRETATIONS and image.bands > 2:
        return (f"{image.bands} bands tagged {image.interpretation!r}, which is grey (one band, plus "
                f"alpha): tag colour as sRGB before returning it, "
                f"image.copy(interpretation='srgb') (docs/plugins.md, \"The image a step gets\")")
    return None


def converted_bands(image: pyvips.Image) -> int:
    """The bands :func:`normalise` makes of ``image`` before it drops channels beyond the first alpha.

    More than 4 means extra channels (five grey samples, RGB plus two) that normalising would throw
    away. Known from a header: libvips works out an operation's bands without computing a pixel.
    """
    return _to_srgb(image, colour_managed=False).bands


def _needs_rotation(image: pyvips.Image) -> bool:
    if image.get_typeof("orientation") == 0 or image.get("orientation") in (0, 1):
        return False
    # A multi-frame strip cannot be turned as a whole (each frame would land elsewhere); animated
    # formats carry no EXIF orientation anyway.
    return not _is_multi_frame(image)


def _is_multi_frame(image: pyvips.Image) -> bool:
    return image.get_typeof("page-height") != 0 and 0 < image.get("page-height") < image.height


def _to_srgb(image: pyvips.Image, colour_managed: bool) -> pyvips.Image:
    interpretation = image.interpretation
    has_profile = image.get_typeof(PROFILE) != 0
    if interpretation == "cmyk" or (has_profile and not colour_managed):
        try:
            # A CMYK image without a profile gets libvips' built-in CMYK profile.
            image = image.icc_transform("srgb", embedded=True, intent="perceptual", depth=8,
                                        input_profile="cmyk" if interpretation == "cmyk" else "srgb")
        except pyvips.Error:  # a broken embedded profile: fall back to plain conversion
            image = image.colourspace("srgb")
        interpretation = image.interpretation
    colour_bands = image.bands - int(image.hasalpha())
    if interpretation in ("srgb", "b-w", "multiband") and image.format == "ushort":
        # 16-bit values under an 8-bit name: scale them down (what rgb16 and grey16 mean), not clip
        interpretation = "rgb16" if colour_bands >= 3 else "grey16"
        image = image.copy(interpretation=interpretation)
    if interpretation == "multiband":  # untagged: decide by the number of bands
        if colour_bands >= 3:
            return image.copy(interpretation="srgb").cast("uchar")
        interpretation = "b-w"
        image = image.copy(interpretation=interpretation)
    if interpretation != "srgb":
        # grey, grey16, rgb16, scRGB, Lab… (libvips scales 16-bit and float down, it does not clip)
        image = image.colourspace("srgb")
    if image.bands < 3:  # one band tagged sRGB: a grey image under the wrong name
        image = image.colourspace("srgb", source_space="b-w")
    if image.format != "uchar":  # sRGB in a wider number format (a step's arithmetic): clip to 0-255
        image = image.cast("uchar")
    return image
