"""The page at ``/`` in a real Chromium against a real ``pixline serve``: the token asked once, an upload
through the file picker, every recipe's output in the grid, the playground rendering an edited recipe
and pointing at the line of a broken one, a drag-and-drop upload, the gallery newest first.

``PIXLINE_SCREENSHOT=docs/screenshot.png`` (``make screenshot``) saves the README's picture of the
page from this run; every run saves one in its temporary folder.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest
import pyvips

from tests.conftest import PHOTOS

from .conftest import pixline_serve

pytestmark = pytest.mark.slow
TOKEN = "browser-test-token"
#: recipe → (width, height, formats) of Storm.jpg (1920×1280) in the default recipe set
EXPECTED = {
    "thumb": (200, 200, {"jpeg"}),
    "feed": (600, 400, {"avif", "webp", "jpeg"}),
    "feed-2x": (1200, 800, {"avif", "webp", "jpeg"}),
    "large": (1920, 1280, {"jpeg"}),
    "social": (1200, 630, {"jpeg"}),
}
#: The default set's eager recipes: each shows its state.
EAGER = {"thumb", "feed", "large"}
BROKEN = """\
description: broken on purpose
steps:
  - resize:
      width: 120
      height: 120
      fit: covr
  - format: {type: jpeg}
"""
# A small PNG made in the page and dropped on the drop zone, as a file dragged from the desktop is.
DROP_A_FILE = """
const done = arguments[arguments.length - 1];
const canvas = document.createElement("canvas");
canvas.width = 320; canvas.height = 200;
const g = canvas.getContext("2d");
g.fillStyle = "#2463eb"; g.fillRect(0, 0, 320, 200);
g.fillStyle = "#f5b700"; g.fillRect(40, 40, 120, 120);
canvas.toBlob((blob) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([blob], "dropped.png", {type: "image/png"}));
  const zone = document.getElementById("drop");
  zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
  done(true);
}, "image/png");
"""


def wait_for(driver: Any, condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll ``condition`` until it returns something true; fail naming ``what`` and the page's state."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            status = driver.execute_script(
                "return [document.getElementById('upload-status').textContent,"
                " document.getElementById('pg-info').textContent, document.getElementById('pg-status').textContent]")
            pytest.fail(f"timed out waiting for {what}; page says {status}")
        time.sleep(0.1)


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def outputs(driver: Any) -> list[dict[str, str]]:
    return js(driver, """
        return [...document.querySelectorAll('#outputs figure[data-recipe]')].map((card) => ({
          recipe: card.dataset.recipe, format: card.dataset.format, state: card.dataset.state,
          preset: (card.querySelector('.preset') || {}).textContent,
          reason: (card.querySelector('.preset') || {}).title,
          shown: card.querySelector('.fmt').textContent, facts: card.querySelector('.facts').textContent,
          url: card.querySelector('.copy input').value}));""")


def type_recipe(driver: Any, text: str) -> None:
    """Replace the editor's text by typing it, as a person would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    editor = driver.find_element(By.ID, "pg-yaml")
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(Keys.DELETE)
    editor.send_keys(text)


def save_screenshot(driver: Any, path: Path) -> None:
    """The whole page as one palette PNG (small enough for a README)."""
    height, chrome = js(driver, "return [document.documentElement.scrollHeight,"
                                " window.outerHeight - window.innerHeight]")
    driver.set_window_size(1360, height + chrome)
    js(driver, "window.scrollTo(0, 0)")
    time.sleep(0.3)  # one layout pass at the new size
    raw = driver.get_screenshot_as_png()
    driver.set_window_size(1360, 1000)
    pyvips.Image.new_from_buffer(raw, "").pngsave(str(path), palette=True, Q=90, compression=9)


def token_then_upload(driver: Any, server: Any) -> str:
    """The token asked once, then Storm.jpg through the file picker: every recipe's every output."""
    from selenium.webdriver.common.by import By

    driver.get(server.url + "/")
    # The gallery is guarded: the server answers 401 and the page asks for the token, once.
    wait_for(driver, lambda: driver.find_element(By.ID, "token-form").is_displayed(), "the token form")
    driver.find_element(By.ID, "token-input").send_keys(TOKEN + "\n")
    wait_for(driver, lambda: "No uploads yet" in driver.find_element(By.ID, "gallery-grid").text,
             "the empty gallery")
    assert not driver.find_element(By.ID, "token-form").is_displayed()

    driver.find_element(By.ID, "owner").send_keys("Ada")
    driver.find_element(By.ID, "file").send_keys(str(PHOTOS / "Storm.jpg"))
    cards = wait_for(driver, lambda: (lambda c: c if len(c) == 9 and all(x["state"] == "done" for x in c)
                                      else None)(outputs(driver)), "nine outputs in the grid", timeout=60)
    image_id = re.search(r"[0-9a-f]{32}", driver.current_url).group(0)
    for recipe, (width, height, formats) in EXPECTED.items():
        mine = [c for c in cards if c["recipe"] == recipe]
        assert {c["format"] for c in mine} == formats, recipe
        for card in mine:
            assert card["shown"] == card["format"]  # the Content-Type that came back
            assert card["facts"].startswith(f"{width} × {height} · "), card
            assert re.search(r"· [\d.]+ (B|KB|MB) · (rendered|from the store) in \d+ ms$", card["facts"]), card
            assert card["url"] == f"{server.url}/r/{recipe}/{image_id}"
    assert "owner: Ada" in driver.find_element(By.ID, "image-summary").text
    # Each eager recipe's state, live: ready once every output is stored (the queue's, or these).
    wait_for(driver, lambda: driver.find_element(By.ID, "image-presets").text == "presets ready",
             "the image's presets ready")
    cards = outputs(driver)
    assert {c["recipe"] for c in cards if c["preset"] == "ready"} == EAGER
    assert all(c["preset"] is None for c in cards if c["recipe"] not in EAGER)
    wait_for(driver, lambda: js(driver, "return document.querySelectorAll('.tile').length") == 1, "the gallery tile")
    tile_painted_until_loaded(driver, server, image_id)
    return image_id


def tile_painted_until_loaded(driver: Any, server: Any, image_id: str) -> None:
    """The tile was painted with the image's dominant colour (its ``colour`` placeholder), gone once
    the output loaded."""
    request = urllib.request.Request(f"{server.url}/images/{image_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        info = json.load(response)
    colour = info["placeholders"]["colour"]
    # Storm.jpg has no faces: nothing drawn over the original's preview.
    assert info["analysis"]["faces"] == [] and not js(driver, "return document.querySelector('.face-box')")
    img = ".tile img"
    assert js(driver, f"return document.querySelector('{img}').dataset.placeholder") == colour
    wait_for(driver, lambda: js(driver, f"const i = document.querySelector('{img}');"
                                        " return i.complete && i.naturalWidth > 0"), "the tile's output")
    assert js(driver, f"return document.querySelector('{img}').style.backgroundColor") == ""


def edit_in_the_playground(driver: Any, screenshots: list[Path]) -> None:
    """Start from a recipe, edit it, see the new output (then the screenshots)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "pg-recipe")).select_by_value("thumb")
    wait_for(driver, lambda: "200 × 200" in driver.find_element(By.ID, "pg-info").text, "the thumb recipe's output")
    source = driver.find_element(By.ID, "pg-yaml").get_property("value")
    assert "width: 200, height: 200" in source
    type_recipe(driver, source.replace("width: 200, height: 200", "width: 120, height: 90"))
    wait_for(driver, lambda: driver.find_element(By.ID, "pg-info").text.startswith("120 × 90 · jpeg"),
             "the edited recipe's output")
    assert js(driver, "return document.getElementById('pg-img').naturalWidth") == 120
    for path in screenshots:
        save_screenshot(driver, path)


def break_the_recipe(driver: Any) -> None:
    """A bad parameter: the error appears next to its line; fixed, it goes."""
    from selenium.webdriver.common.by import By

    type_recipe(driver, BROKEN)
    error = wait_for(driver, lambda: (lambda e: e if e.is_displayed() else None)(
        driver.find_element(By.ID, "pg-error")), "the playground's error")
    assert error.get_attribute("data-line") == "6"
    assert "parameter 'fit'" in error.text and error.text.startswith("line 6: step 1 (resize)")
    assert driver.find_element(By.CSS_SELECTOR, "#pg-gutter .bad").text == "6"
    editor = driver.find_element(By.ID, "pg-yaml")
    offset = error.rect["y"] - editor.rect["y"]  # padding 8 px, lines of 20 px: line 6 starts at 108
    assert 8 + 5 * 20 - 2 <= offset <= 8 + 5 * 20 + 2, offset
    assert driver.find_element(By.ID, "pg-output").get_attribute("data-state") == "error"
    type_recipe(driver, BROKEN.replace("covr", "cover"))
    wait_for(driver, lambda: not driver.find_element(By.ID, "pg-error").is_displayed(), "the error to go")
    wait_for(driver, lambda: driver.find_element(By.ID, "pg-info").text.startswith("120 × 120"), "the fixed output")


def drop_a_file(driver: Any, server: Any, first_id: str) -> None:
    """A file dropped on the drop zone is a second upload, first in the gallery."""
    driver.execute_async_script(DROP_A_FILE)
    wait_for(driver, lambda: re.search(r"#([0-9a-f]{32})$", driver.current_url).group(1) != first_id,
             "the dropped file to be shown")
    dropped_id = driver.current_url.rsplit("#", 1)[1]
    wait_for(driver, lambda: js(driver, "return [...document.querySelectorAll('.tile')].map(t => t.dataset.id)")
             == [dropped_id, first_id], "both uploads in the gallery, newest first")
    assert (server.store / "originals" / dropped_id).is_file()


def test_page_uploads_shows_every_output_and_runs_the_playground(chromium: Any, tmp_path: Path) -> None:
    saved = tmp_path / "screenshot.png"
    screenshots = [saved] + ([Path(os.environ["PIXLINE_SCREENSHOT"])] if os.environ.get("PIXLINE_SCREENSHOT") else [])
    with pixline_serve(tmp_path, "--workers", "1", "--upload-token", TOKEN) as server:
        image_id = token_then_upload(chromium, server)
        edit_in_the_playground(chromium, screenshots)
        break_the_recipe(chromium)
        drop_a_file(chromium, server, image_id)
        assert not (server.store / "derived" / "playground").exists()  # the playground stored nothing
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shot = pyvips.Image.new_from_file(str(saved))
    assert shot.width == 1360 and shot.height > 1000


def test_page_shows_a_recipe_the_queue_gave_up_on_as_failed_with_its_reason(chromium: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "small.yaml").write_text("eager: true\nsteps:\n  - resize: {width: 160}\n  - format: {type: jpeg}\n")
    # Over --max-output-pixels for this photo: the queue gives it up (image.failed), never renders it.
    (recipes / "huge.yaml").write_text("eager: true\nsteps:\n  - resize: {width: 8000, enlarge: true}\n")
    with pixline_serve(tmp_path, "--workers", "1", "--recipes", str(recipes)) as server:
        chromium.get(server.url + "/")
        wait_for(chromium, lambda: js(chromium, "return document.body.dataset.ready") == "true", "the page")
        chromium.find_element(By.ID, "file").send_keys(str(PHOTOS / "Storm.jpg"))
        wait_for(chromium, lambda: chromium.find_element(By.ID, "image-presets").text == "presets failed",
                 "the image's presets failed", timeout=60)
        cards = {c["recipe"]: c for c in outputs(chromium)}
        assert cards["huge"]["preset"] == "failed" and "asks for 8000×5333" in cards["huge"]["reason"]
        wait_for(chromium, lambda: {c["recipe"]: c["preset"] for c in outputs(chromium)}["small"] == "ready",
                 "small ready")


#: A quality: auto recipe (not eager: its first view renders on demand, answering X-Pixline-Quality;
#: a later one comes from the store, whose quality GET /images/{id} lists under auto_quality).
AUTO_RECIPE = "steps:\n  - resize: {width: 300}\n  - format: {type: webp, quality: auto}\n"
AUTO_QUALITY = r"quality q(\d+) \(auto\)"


def astronaut_jpeg(path: Path) -> Path:
    """scikit-image's astronaut (Eileen Collins, a face pixline-faces finds) as a JPEG file."""
    import numpy as np
    import skimage.data

    array = np.ascontiguousarray(skimage.data.astronaut()[..., :3])
    pyvips.Image.new_from_array(array).copy(interpretation="srgb").jpegsave(str(path), Q=90)
    return path


def auto_card(driver: Any) -> dict[str, str]:
    return wait_for(driver, lambda: (lambda c: c[0] if c and c[0]["state"] == "done" else None)(
        [c for c in outputs(driver) if c["recipe"] == "auto"]), "the auto recipe's output", timeout=60)


def face_boxes(driver: Any) -> list[dict[str, float]]:
    """Each .face-box over the original's preview, in fractions of the preview's picture."""
    return js(driver, """
        const img = document.querySelector('#outputs .original .preview img').getBoundingClientRect();
        return [...document.querySelectorAll('#outputs .original .preview .face-box')].map((box) => {
          const r = box.getBoundingClientRect();
          return {x: (r.left - img.left) / img.width, y: (r.top - img.top) / img.height,
                  width: r.width / img.width, height: r.height / img.height};
        });""")


def test_page_shows_the_quality_auto_chose_and_the_faces_found(chromium: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "auto.yaml").write_text(AUTO_RECIPE)
    with pixline_serve(tmp_path, "--workers", "1", "--recipes", str(recipes)) as server:
        chromium.get(server.url + "/")
        wait_for(chromium, lambda: js(chromium, "return document.body.dataset.ready") == "true", "the page")
        chromium.find_element(By.ID, "file").send_keys(str(astronaut_jpeg(tmp_path / "astronaut.jpg")))
        fresh = auto_card(chromium)
        assert "rendered in" in fresh["facts"], fresh
        quality = int(re.search(AUTO_QUALITY, fresh["facts"]).group(1))
        assert 1 <= quality <= 100
        # The faces found at upload, drawn where they are over the preview (the 300 px square output).
        image_id = re.search(r"[0-9a-f]{32}", chromium.current_url).group(0)
        with urllib.request.urlopen(f"{server.url}/images/{image_id}", timeout=10) as response:
            faces = json.load(response)["analysis"]["faces"]
        assert faces
        drawn = wait_for(chromium, lambda: face_boxes(chromium), "a .face-box over the preview")
        assert len(drawn) == len(faces)
        for box, face in zip(drawn, faces):
            assert all(abs(box[k] - face[k]) < 0.02 for k in face), (box, face)
        # Shown again, the output comes from the store, without the header: the quality from GET /images/{id}.
        chromium.execute_cdp_cmd("Network.clearBrowserCache", {})  # else the first answer, headers and all
        chromium.refresh()
        stored = auto_card(chromium)
        assert "from the store" in stored["facts"] and f"quality q{quality} (auto)" in stored["facts"], stored
        # The playground's result line says the quality its render chose.
        Select(chromium.find_element(By.ID, "pg-recipe")).select_by_value("auto")
        wait_for(chromium, lambda: re.search(AUTO_QUALITY, chromium.find_element(By.ID, "pg-info").text),
                 "the playground's quality", timeout=60)
