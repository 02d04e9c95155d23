"""pixline-faces: faces found once at upload, on real portraits (scikit-image's public-domain
astronaut, Eileen Collins), and crops that keep them where libvips' attention does not."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import pyvips
import skimage.data
from falcon.testing import TestClient

import pixline_faces
from pixline.engine import Context, Registry, RecipeError, Source, analysis, testing
from pixline.server.commands.wiring import make_derivatives
from pixline.server.http.app import create_app
from pixline.server.http.signing import sign_path
from pixline.server.settings import Settings

KEY = "test-key"


def picture(array: np.ndarray) -> pyvips.Image:
    return pyvips.Image.new_from_array(np.ascontiguousarray(array[..., :3])).copy(interpretation="srgb")


def astronaut() -> pyvips.Image:
    return picture(skimage.data.astronaut())


def wide_portrait() -> pyvips.Image:
    """A wide picture: the astronaut on the left, a saturated, busy slide on the right, which is
    where libvips' attention looks (it cuts a tall crop through or beside her face)."""
    slide = picture(skimage.data.immunohistochemistry())
    return astronaut().join(slide.resize(512 / slide.height), "horizontal")


def registry(*, faces: bool = True) -> Registry:
    loaded = Registry.load(refuse=False) if faces else Registry()
    if not faces:
        import pixline_crop
        import pixline_format
        import pixline_resize
        for name, module in (("crop", pixline_crop), ("resize", pixline_resize), ("format", pixline_format)):
            loaded.add(name, module, f"pixline-{name}", "0.1.0")
    return loaded


def faces_in(image: pyvips.Image) -> list[dict]:
    found = analysis.analyse(registry().analysers, Source(image.jpegsave_buffer(Q=92)),
                             Context(source_size=(image.width, image.height)), ["faces"])
    return found["faces"]["value"]


def keeps(box: tuple[int, int, int, int], face: dict, width: int, height: int) -> bool:
    left, top, w, h = box
    fx, fy = face["x"] * width, face["y"] * height
    return (left <= fx and fx + face["width"] * width <= left + w
            and top <= fy and fy + face["height"] * height <= top + h)


def test_the_detector_finds_the_astronauts_face_and_nothing_in_pictures_without_people():
    (face,) = faces_in(astronaut())
    # Her face is about (177, 67) to (270, 160) of the 512 × 512 picture.
    assert face["x"] == pytest.approx(177 / 512, abs=0.03) and face["y"] == pytest.approx(67 / 512, abs=0.03)
    assert face["width"] == pytest.approx(93 / 512, abs=0.04)
    for name in ("coffee", "chelsea", "rocket", "immunohistochemistry"):
        assert faces_in(picture(getattr(skimage.data, name)())) == [], name


@pytest.mark.parametrize("aspect", ["1:2", "1:3"])
def test_a_tall_crop_of_a_wide_picture_keeps_the_face_where_attention_does_not(aspect):
    wide = wide_portrait()
    (face,) = faces_in(wide)
    boxes = {}
    for gravity in ("attention", "face"):
        recipe = testing.recipe(registry(), [{"crop": {"aspect": aspect, "gravity": gravity}}])
        rs = recipe.steps[0]
        ctx = Context(source_size=(wide.width, wide.height), analysis={"faces": [face]},
                      gravities=recipe.gravities)
        boxes[gravity] = rs.step.box(wide.copy_memory(), rs.params, ctx)
    assert keeps(boxes["face"], face, wide.width, wide.height), boxes
    assert not keeps(boxes["attention"], face, wide.width, wide.height), boxes


def test_the_crop_is_centred_on_the_union_of_the_faces_or_the_largest_when_they_do_not_fit():
    gravity = pixline_faces.Face()
    two = [{"x": 0.1, "y": 0.4, "width": 0.1, "height": 0.2}, {"x": 0.5, "y": 0.4, "width": 0.05, "height": 0.1}]
    ctx = Context(source_size=(1000, 500), analysis={"faces": two})
    # Both fit in 600 px: the union is 100..550, centred → 25.
    assert gravity.place(1000, 500, 600, 500, ctx) == (25, 0)
    # They do not fit in 200 px: the largest (100..200) is centred → 50.
    assert gravity.place(1000, 500, 200, 500, ctx) == (50, 0)
    assert gravity.place(1000, 500, 200, 500, Context(analysis={"faces": []})) is None
    # An earlier step changed the picture's shape: the boxes no longer apply.
    assert gravity.place(500, 500, 200, 200, ctx) is None


def service(tmp_path: Path, plugins: Registry | None = None) -> tuple[TestClient, object]:
    recipes = tmp_path / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / "tall.yaml").write_text("steps:\n  - crop: {aspect: \"1:2\", gravity: face}\n"
                                       "  - format: {type: png}\n")
    (recipes / "tall-attention.yaml").write_text("steps:\n  - crop: {aspect: \"1:2\", gravity: attention}\n"
                                                 "  - format: {type: png}\n")
    settings = Settings(store=f"file://{tmp_path / 'store'}", recipes=str(recipes), signing_key=[KEY])
    derivatives = make_derivatives(settings, registry=plugins or registry())
    return TestClient(create_app(derivatives, settings, None)), derivatives


def counting(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = pixline_faces.Faces.analyse

    def analyse(self, image, ctx):
        calls.append(image.width)
        return original(self, image, ctx)

    monkeypatch.setattr(pixline_faces.Faces, "analyse", analyse)
    return calls


def test_faces_are_found_once_at_upload_and_no_render_runs_the_detector(tmp_path, monkeypatch):
    calls = counting(monkeypatch)
    client, _ = service(tmp_path)
    wide = wide_portrait()
    created = client.simulate_post("/images", body=wide.jpegsave_buffer(Q=92))
    assert created.status_code == 201, created.text
    image_id = created.json["id"]
    (face,) = created.json["analysis"]["faces"]
    assert client.simulate_get(f"/images/{image_id}").json["analysis"]["faces"] == [face]
    assert calls == [768]  # from the small reduced copy's size, once
    tall = client.simulate_get(f"/r/tall/{image_id}")
    adhoc = client.simulate_get(sign_path(f"resize:w=100,h=200,fit=cover,g=face/{image_id}", KEY))
    assert tall.status_code == 200 and adhoc.status_code == 200, (tall.text, adhoc.text)
    assert calls == [768]
    crop = pyvips.Image.new_from_buffer(tall.content, "")
    assert (crop.width, crop.height) == (256, 512)
    # The crop is the one the face gravity places: the original cut there, within encoding noise.
    left, top = pixline_faces.Face().place(wide.width, wide.height, 256, 512,
                                           Context(source_size=(wide.width, wide.height), analysis={"faces": [face]}))
    assert keeps((left, top, 256, 512), face, wide.width, wide.height)
    assert (crop - wide.crop(left, top, 256, 512)).abs().avg() < 6
    assert tall.content != client.simulate_get(f"/r/tall-attention/{image_id}").content


def test_an_image_taken_in_before_the_plugin_is_analysed_once_on_its_first_face_render(tmp_path, monkeypatch):
    client, derivatives = service(tmp_path)
    image_id = client.simulate_post("/images", body=wide_portrait().jpegsave_buffer(Q=92)).json["id"]
    meta = derivatives.store.get_meta(image_id)
    del meta["analysis"]["faces"]  # as if pixline-faces had been installed after the upload
    derivatives.store.put_meta(image_id, meta)
    calls = counting(monkeypatch)
    client, derivatives = service(tmp_path)  # a fresh process: no meta cached
    assert client.simulate_get(f"/r/tall-attention/{image_id}").status_code == 200
    assert calls == []  # a recipe without the face gravity does not ask for faces
    assert client.simulate_get(f"/r/tall/{image_id}").status_code == 200
    assert calls == [768]
    assert derivatives.store.get_meta(image_id)["analysis"]["faces"]["version"] == "1"
    client.simulate_get(sign_path(f"resize:w=90,h=200,fit=cover,g=face/{image_id}", KEY))
    assert calls == [768]


def test_a_picture_without_faces_renders_as_attention_does(tmp_path):
    client, _ = service(tmp_path)
    coffee = picture(skimage.data.coffee())
    image_id = client.simulate_post("/images", body=coffee.jpegsave_buffer(Q=92)).json["id"]
    assert client.simulate_get(f"/images/{image_id}").json["analysis"]["faces"] == []
    face = client.simulate_get(f"/r/tall/{image_id}")
    attention = client.simulate_get(f"/r/tall-attention/{image_id}")
    assert face.status_code == 200 and face.content == attention.content


def test_a_detector_that_fails_on_an_odd_image_is_logged_and_the_crop_falls_back(tmp_path, monkeypatch, caplog):
    def broken(self, image, ctx):
        raise RuntimeError("cascade fell over")

    monkeypatch.setattr(pixline_faces.Faces, "analyse", broken)
    client, derivatives = service(tmp_path)
    caplog.set_level(logging.WARNING)
    created = client.simulate_post("/images", body=astronaut().jpegsave_buffer(Q=92))
    assert created.status_code == 201
    assert "faces" not in created.json["analysis"]  # a failed analysis is no result
    meta = derivatives.store.get_meta(created.json["id"])
    assert meta["analysis"]["faces"]["error"] == "RuntimeError: cascade fell over"
    image_id = created.json["id"]
    face = client.simulate_get(f"/r/tall/{image_id}")
    attention = client.simulate_get(f"/r/tall-attention/{image_id}")
    assert face.status_code == 200 and face.content == attention.content
    assert "cascade fell over" in caplog.text  # logged at upload


def test_gravity_face_without_the_plugin_is_a_clear_error_not_a_500(tmp_path):
    with pytest.raises(RecipeError, match="'face' is not a gravity.*plugin"):
        testing.recipe(registry(faces=False), [{"crop": {"aspect": "1:2", "gravity": "face"}}])
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "thumb.yaml").write_text("steps:\n  - resize: {width: 64}\n")
    settings = Settings(store=f"file://{tmp_path / 'store'}", recipes=str(recipes), signing_key=[KEY])
    client = TestClient(create_app(make_derivatives(settings, registry=registry(faces=False)), settings, None))
    image_id = client.simulate_post("/images", body=astronaut().jpegsave_buffer()).json["id"]
    answer = client.simulate_get(sign_path(f"resize:w=100,h=200,fit=cover,g=face/{image_id}", KEY))
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "'face' is not a gravity" in answer.json["detail"]
    unknown = client.simulate_get(sign_path(f"resize:w=100,h=200,fit=cover,g=nosuch/{image_id}", KEY))
    assert unknown.status_code == 400 and "'nosuch' is not a gravity" in unknown.json["detail"]


def test_opencv_is_imported_on_first_use_not_with_the_plugin():
    import subprocess
    import sys

    code = ("import sys; from pixline.engine import Registry; r = Registry.load(); "
            "assert 'cv2' not in sys.modules, 'loaded with the plugin'; import pyvips; "
            "from pixline.engine import Context; a = r.analysers['faces']; "
            "a.analyse(pyvips.Image.black(64, 64, bands=3).copy(interpretation='srgb'), Context()); "
            "assert 'cv2' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
