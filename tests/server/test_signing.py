"""Ad-hoc URLs /t/{signature}/{steps}/{id}: the path syntax, HMAC signatures with key rotation,
``unsafe``, limits, caching under derived/adhoc/, and the ``pixline sign`` helper."""
from __future__ import annotations

import subprocess
import sys
from typing import Callable

import pytest

from pixline.engine import Registry, testing
from pixline.engine.errors import ParameterError, RecipeError
from pixline.server.http.errors import CredentialsInvalidError, CredentialsMissingError
from pixline.server.http.signing import sign_path, signature, verify
from pixline.server.http.urlsteps import adhoc_recipe, check_output_size, format_steps, parse_steps

from .conftest import Service, listing
from .test_http_upload import assert_problem

PATH = "/resize:w=300,h=200,fit=cover/format:type=webp/0123456789abcdef0123456789abcdef"


# -- signatures ----------------------------------------------------------------------------------

def test_signature_is_hmac_sha256_urlsafe_base64_of_the_path() -> None:
    import base64
    import hashlib
    import hmac

    expected = base64.urlsafe_b64encode(hmac.new(b"k", PATH.encode(), hashlib.sha256).digest()).rstrip(b"=")
    assert signature(PATH, "k") == expected.decode()
    assert len(signature(PATH, "k")) == 43
    assert sign_path(PATH.lstrip("/"), "k") == f"/t/{expected.decode()}{PATH}"


def test_verify_accepts_any_configured_key_and_refuses_others() -> None:
    old, new = "old-key", "new-key"
    assert verify(signature(PATH, old), PATH, [new, old], allow_unsafe=False) is False
    assert verify(signature(PATH, new), PATH, [new, old], allow_unsafe=False) is False
    with pytest.raises(CredentialsInvalidError):
        verify(signature(PATH, "other"), PATH, [new, old], allow_unsafe=False)
    with pytest.raises(CredentialsInvalidError):
        verify(signature(PATH, new), PATH.replace("300", "301"), [new], allow_unsafe=False)
    with pytest.raises(CredentialsInvalidError):
        verify(signature(PATH, new), PATH, [], allow_unsafe=False)
    with pytest.raises(CredentialsInvalidError):
        verify("é" * 43, PATH, [new], allow_unsafe=False)


def test_unsafe_only_when_allowed() -> None:
    assert verify("unsafe", PATH, ["k"], allow_unsafe=True) is True
    with pytest.raises(CredentialsMissingError):
        verify("unsafe", PATH, ["k"], allow_unsafe=False)
    with pytest.raises(CredentialsMissingError):
        verify("", PATH, ["k"], allow_unsafe=False)


# -- the URL syntax -----------------------------------------------------------------------------

def test_parse_expands_aliases_and_validates_through_the_recipe_schema(registry: Registry) -> None:
    steps = parse_steps("resize:w=300,h=200,fit=cover/format:type=webp,q=70", registry, max_steps=10)
    assert steps == [{"resize": {"width": "300", "height": "200", "fit": "cover"}},
                     {"format": {"type": "webp", "quality": "70"}}]
    recipe = adhoc_recipe("resize:w=300,h=200,fit=cover/format:type=webp,q=70", registry, 10)
    same = testing.recipe(registry, [{"resize": {"width": 300, "height": 200, "fit": "cover"}},
                                     {"format": {"type": "webp", "quality": 70}}], name="adhoc")
    assert recipe.name == "adhoc"
    assert recipe.digest == same.digest  # the same steps in YAML and in a URL are the same recipe


def test_format_steps_writes_a_trailing_newline_in_base64(registry: Registry) -> None:
    # "x\n" is not a plain value (plain values are matched whole), so it is written as b64.
    text = format_steps([{"watermark": {"text": "x\n"}}])
    assert text == "watermark:text=b64:eAo"
    assert parse_steps(text, registry, 10) == [{"watermark": {"text": "x\n"}}]


def test_a_step_declares_its_own_short_url_keys_in_its_schema() -> None:
    import types

    from pixline.engine import Step, StepParams, hookimpl

    class Soften(Step):
        name = "soften"

        class Params(StepParams):
            url_keys = {"s": "sigma"}
            sigma: float = 1.0
            width: int = 0  # resize's short keys are resize's: 'w' means nothing here

    @hookimpl
    def pixline_register_steps(register):
        register(Soften)

    plugins = Registry.load(extra=[("soften", types.SimpleNamespace(pixline_register_steps=pixline_register_steps))])
    assert parse_steps("soften:s=3/resize:w=10,g=north", plugins, 10) == [
        {"soften": {"sigma": "3"}}, {"resize": {"width": "10", "gravity": "north"}}]
    assert adhoc_recipe("soften:s=3", plugins, 10).steps[0].params.sigma == 3.0
    with pytest.raises(RecipeError, match="parameter 'w': unknown parameter"):
        adhoc_recipe("soften:w=3", plugins, 10)


def test_format_steps_round_trips_lists_and_text(registry: Registry) -> None:
    steps = [{"resize": {"width": 300, "fit": "inside"}},
             {"watermark": {"text": "© {owner}, 2024", "opacity": 0.5}},
             {"format": {"type": "auto", "candidates": ["avif", "webp"]}}]
    text = format_steps(steps)
    assert text.startswith("resize:width=300,fit=inside/watermark:text=b64:")
    assert text.endswith("/format:type=auto,candidates=avif+webp")
    from_url = adhoc_recipe(text, registry, 10)
    assert from_url.digest == testing.recipe(registry, steps, name="adhoc").digest


@pytest.mark.parametrize("steps,fragment", [
    ("resize:w=0", "width"),
    ("resize:w=abc", "width"),
    ("resize:fit=sideways,w=10", "fit"),
    ("resize:colour=red,w=10", "unknown parameter"),
    ("nosuchstep:x=1", "unknown step"),
    ("format:type=bmp", "unknown output format 'bmp'"),
    ("resize:w=10,width=20", "twice"),
    ("resize:w=10,w=20", "twice"),
    ("resize:w", "KEY=VALUE"),
    ("resize:w=1 0", "b64"),
    ("resize:W=10", "KEY=VALUE"),
    ("RESIZE:w=10", "not a step"),
    ("watermark:text=b64:!!!", "b64"),
    ("", "not a step"),
    # Names, keys and values are matched whole: a trailing newline is not "the end".
    ("resize\n:w=10", "not a step"),
    ("resize:w\n=10", "KEY=VALUE"),
    ("resize:w=10\n", "b64"),
])
def test_bad_steps_are_parameter_errors(registry: Registry, steps: str, fragment: str) -> None:
    with pytest.raises((ParameterError, RecipeError), match=fragment):
        adhoc_recipe(steps, registry, 10)


# -- over HTTP ----------------------------------------------------------------------------------

def signed(service: Service, steps: str, image_id: str, key: str = "test-key") -> str:
    return sign_path(f"{steps}/{image_id}", key)


def test_signed_url_renders_caches_and_revalidates(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    url = signed(service, "resize:w=100,h=80,fit=cover/format:type=webp", image_id)
    first = service.client.simulate_get(url)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/webp"
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    out = testing.decode(first.content)
    assert (out.width, out.height) == (100, 80)
    assert service.root is not None
    stored = listing(service.root, "derived/adhoc")
    assert len(stored) == 1 and stored[0].endswith(f"/{image_id}.webp")
    again = service.client.simulate_get(url)
    assert again.content == first.content
    assert service.metric("pixline_render_seconds_count", recipe="adhoc") == 1
    assert service.client.simulate_get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    head = service.client.simulate_head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(first.content))
    # Deleting the image deletes its ad-hoc outputs too.
    service.client.simulate_delete(f"/images/{image_id}")
    assert listing(service.root, "derived") == []


def test_ad_hoc_auto_format_varies_on_accept(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    url = signed(service, "resize:w=64/format:type=auto", image_id)
    webp = service.client.simulate_get(url, headers={"Accept": "image/webp"})
    jpeg = service.client.simulate_get(url)
    assert (webp.headers["content-type"], jpeg.headers["content-type"]) == ("image/webp", "image/jpeg")
    assert webp.headers["vary"] == jpeg.headers["vary"] == "Accept"


def test_rotated_keys_are_all_accepted(make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(signing_key=["new", "old"])
    image_id = service.upload(small_jpeg)
    for key in ("new", "old"):
        assert service.client.simulate_get(signed(service, "resize:w=50", image_id, key)).status_code == 200
    assert_problem(service.client.simulate_get(signed(service, "resize:w=50", image_id, "retired")), 403)


def test_bad_and_missing_signatures(service: Service, small_jpeg: bytes) -> None:
    image_id = service.upload(small_jpeg)
    good = signed(service, "resize:w=50", image_id)
    sig = good.split("/")[2]
    assert_problem(service.client.simulate_get(good.replace("w=50", "w=51")), 403)
    assert_problem(service.client.simulate_get(f"/t/{sig[:-1]}A/resize:w=50/{image_id}"), 403)
    assert_problem(service.client.simulate_get(f"/t/not-a-signature/resize:w=50/{image_id}"), 403)
    assert_problem(service.client.simulate_get(f"/t/unsafe/resize:w=50/{image_id}"), 401)
    # A tampered path is refused before its steps are even looked at.
    assert_problem(service.client.simulate_get(f"/t/{sig}/nosuchstep/{image_id}"), 403)
    assert service.root is not None and listing(service.root, "derived") == []


def test_unsafe_mode_renders_but_does_not_store(make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(allow_unsafe=True)
    image_id = service.upload(small_jpeg)
    result = service.client.simulate_get(f"/t/unsafe/resize:w=40/format:type=png/{image_id}")
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert result.headers["cache-control"] == "no-cache"
    assert service.root is not None and listing(service.root, "derived") == []
    # With no signing key configured, signed URLs cannot be valid.
    assert_problem(service.client.simulate_get(sign_path(f"resize:w=40/{image_id}", "any")), 403)


def test_signatures_cover_the_path_as_sent(service: Service, small_jpeg: bytes) -> None:
    # falcon's test client passes the raw target as RAW_URI, as the server's front does.
    image_id = service.upload(small_jpeg)
    url = signed(service, "resize:w=50/format:type=png", image_id)
    assert service.client.simulate_get(url).status_code == 200
    for spelling in (url.replace("resize:", "resize%3A"), url.replace("/format", "/%66ormat")):
        body = assert_problem(service.client.simulate_get(spelling), 403)
        assert "signature does not match" in body["detail"]
    assert_problem(service.client.simulate_get(url.replace("/t/", "/%74/")), 403)


@pytest.mark.parametrize("steps", [
    "resize:w=0", "resize:w=-5", "resize:fit=nope,w=5", "resize:bogus=1,w=5", "nosuch:a=1",
    "format:type=tiff", "format:type=png,quality=50", "resize:w=99999", "resize:w=10,w=10",
    "resize:w=%00", "resize:text=b64:%ff", "watermark:opacity=2,text=x",
])
def test_bad_ad_hoc_params_are_400(make_service: Callable[..., Service], small_jpeg: bytes, steps: str) -> None:
    service = make_service(allow_unsafe=True, signing_key=["k"])
    image_id = service.upload(small_jpeg)
    assert_problem(service.client.simulate_get(f"/t/unsafe/{steps}/{image_id}"), 400)
    # Signatures cover the path as sent, percent-escapes and all: what was signed is what is parsed.
    url = sign_path(f"{steps}/{image_id}", "k").split("/", 3)
    assert_problem(service.client.simulate_get(f"/t/{url[2]}/{steps}/{image_id}"), 400)


def test_too_many_steps_is_400(make_service: Callable[..., Service], small_jpeg: bytes) -> None:
    service = make_service(allow_unsafe=True, max_steps=3)
    image_id = service.upload(small_jpeg)
    three = "/".join(["resize:w=100"] * 3)
    assert service.client.simulate_get(f"/t/unsafe/{three}/{image_id}").status_code == 200
    body = assert_problem(service.client.simulate_get(f"/t/unsafe/{three}/resize:w=50/{image_id}"), 400)
    assert "at most 3" in body["detail"]


def test_output_size_limit_is_checked_before_rendering(make_service: Callable[..., Service],
                                                       small_jpeg: bytes) -> None:
    service = make_service(allow_unsafe=True, max_output_pixels=100_000)
    image_id = service.upload(small_jpeg)  # 320×240 = 76 800 pixels
    for steps in ("resize:w=400,h=400,enlarge=true", "resize:w=1000,enlarge=true",  # 1000×750
                  "resize:h=300,dpr=2,enlarge=true", "resize:w=300,h=300,fit=outside,enlarge=true"):
        body = assert_problem(service.client.simulate_get(f"/t/unsafe/{steps}/{image_id}"), 400)
        assert "over the limit" in body["detail"]
    assert service.metric("pixline_render_seconds_count", recipe="adhoc") == 0
    assert service.client.simulate_get(f"/t/unsafe/resize:w=300/{image_id}").status_code == 200


def test_output_size_limit_counts_what_each_step_makes(registry: Registry) -> None:
    # fill with one side keeps the other (1×1280); an enlarging resize then keeps that aspect.
    strip = adhoc_recipe("resize:w=1,fit=fill/resize:w=200,enlarge=true", registry, 10)
    with pytest.raises(ParameterError) as err:
        check_output_size(strip, 1920, 1280, 16_000_000)
    assert str(err.value) == ("ad-hoc URL: step 2 (resize) asks for 200×256000 = 51200000 pixels, "
                              "over the limit of 16000000")
    # An intermediate size counts even when the last step shrinks again.
    big_then_small = adhoc_recipe("resize:w=8000,enlarge=true/resize:w=100", registry, 10)
    with pytest.raises(ParameterError, match=r"step 1 \(resize\) asks for 8000×5333 = "):
        check_output_size(big_then_small, 1920, 1280, 16_000_000)
    check_output_size(adhoc_recipe("resize:w=4000,h=4000", registry, 10), 1920, 1280, 16_000_000)


def test_output_size_limit_follows_crops(registry: Registry) -> None:
    # A tall aspect crop, then an enlarging resize to a width: 24×240, then 200×2000.
    tall = adhoc_recipe(format_steps([{"crop": {"aspect": "1:10"}}, {"resize": {"width": 200, "enlarge": True}}]),
                        registry, 10)
    with pytest.raises(ParameterError, match=r"step 2 \(resize\) asks for 200×2000 = 400000 pixels"):
        check_output_size(tall, 320, 240, 100_000)
    # A box larger than the image is clipped to it: 320×240, within the limit.
    check_output_size(adhoc_recipe("crop:width=2000,height=2000", registry, 10), 320, 240, 100_000)


def test_output_size_limit_stops_a_stretched_strip_before_rendering(make_service: Callable[..., Service],
                                                                   small_jpeg: bytes) -> None:
    service = make_service(allow_unsafe=True, max_output_pixels=100_000)
    image_id = service.upload(small_jpeg)  # 320×240: 1×240, then 200×48000
    body = assert_problem(service.client.simulate_get(
        f"/t/unsafe/resize:w=1,fit=fill/resize:w=200,enlarge=true/{image_id}"), 400)
    assert body["detail"] == ("ad-hoc URL: step 2 (resize) asks for 200×48000 = 9600000 pixels, "
                              "over the limit of 100000")
    assert service.metric("pixline_render_seconds_count", recipe="adhoc") == 0


@pytest.mark.parametrize("tail", ["resize:w=10/..%2F..%2Fetc", "resize:w=10/{id}%00", "resize:w=10/",
                                  "{id}", "resize:w=10/" + "a" * 3000, "resize:w=10/{ID}"])
def test_ad_hoc_path_tricks_are_4xx(make_service: Callable[..., Service], small_jpeg: bytes, tail: str) -> None:
    service = make_service(allow_unsafe=True)
    image_id = service.upload(small_jpeg)
    result = service.client.simulate_get("/t/unsafe/" + tail.replace("{id}", image_id)
                                         .replace("{ID}", image_id.upper()))
    assert result.status_code in (400, 404), result.text
    assert result.headers["content-type"] == "application/problem+json"


# -- pixline sign ---------------------------------------------------------------------------------

def run_pixline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "pixline.server.commands", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_sign_command_prints_a_url_the_server_accepts(make_service: Callable[..., Service],
                                                      small_jpeg: bytes) -> None:
    service = make_service(signing_key=["cli-key"])
    image_id = service.upload(small_jpeg)
    done = run_pixline("sign", "--signing-key", "cli-key", f"resize:w=64,h=64,fit=cover/{image_id}")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url == sign_path(f"resize:w=64,h=64,fit=cover/{image_id}", "cli-key")
    assert service.client.simulate_get(url).status_code == 200
    from_env = run_pixline("sign", f"resize:w=64,h=64,fit=cover/{image_id}",
                           env={"PIXLINE_SIGNING_KEY": "cli-key,older-key", "PIXLINE_PUBLIC_URL": "https://cdn.example"})
    assert from_env.stdout.strip() == "https://cdn.example" + url


def test_sign_command_refuses_bad_steps_and_a_missing_key() -> None:
    image_id = "0123456789abcdef0123456789abcdef"
    bad = run_pixline("sign", "--signing-key", "k", f"resize:fit=sideways/{image_id}")
    assert bad.returncode == 1 and "fit" in bad.stderr and "Traceback" not in bad.stderr
    no_key = run_pixline("sign", f"resize:w=5/{image_id}", env={"PIXLINE_SIGNING_KEY": ""})
    assert no_key.returncode == 1 and "signing key" in no_key.stderr
