"""The studio's page end to end in a real headless Chromium (Debian ``chromium`` and
``chromium-driver`` through Selenium; ``.ci/run`` installs them): pick samples, upload a photo, start
a 48 px run, see the image change and the loss curve grow, stop, resume, finish, download; paint two
regions with mouse strokes and run two styles; the gallery; a bad upload's sentence. The screenshot
in the docs (``docs/studio.png``) is taken here: ``MINIVGG_UPDATE_SCREENSHOT=1`` writes it."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip(
    "starlette", reason="the studio needs the web extra: pip install 'minivgg[web]'"
)
pytest.importorskip("selenium", reason="the browser tests need selenium (the test extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip(
        "the browser tests need Chromium and its driver: apt-get install chromium chromium-driver",
        allow_module_level=True,
    )

import httpx  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402
from test_studio import start_server  # noqa: E402

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "studio.png"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, base, token = start_server(tmp_path_factory.mktemp("studio") / "runs")
    yield base, token
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 40x56 mid-grey photo with a little texture: the styles' colours show in the result."""
    rng = np.random.default_rng(26)
    path = tmp_path_factory.mktemp("inputs") / "photo.png"
    grey = 128 + rng.normal(0, 12, (40, 56, 1)) + np.zeros((1, 1, 3))
    Image.fromarray(grey.clip(0, 255).astype(np.uint8)).save(path)
    return path


def wait(predicate, seconds=120.0, what="condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def open_page(browser, server, token=None):
    base, good = server
    browser.get(f"{base}/?token={good if token is None else token}")
    if token is None:
        wait(lambda: browser.execute_script("return document.body.dataset.ready"), 30, "the page")


def field(browser, name, value):
    el = browser.find_element(By.ID, name)
    el.clear()
    el.send_keys(value)


def text(browser, element_id) -> str:
    return browser.find_element(By.ID, element_id).text


def js(browser, expr):
    return browser.execute_script(f"return {expr}")


def fill(browser, photo, iters, styles=("sample:starry-night",)):
    browser.find_element(By.ID, "content-file").send_keys(str(photo))
    for k, source in enumerate(styles, 1):
        if k > 1:
            browser.find_element(By.ID, "add-style").click()
        Select(browser.find_element(By.ID, f"style{k}-source")).select_by_value(source)
    field(browser, "size", "48")
    field(browser, "iters", str(iters))
    if not browser.find_element(By.ID, "all_iters").is_selected():
        browser.find_element(By.ID, "all_iters").click()


def test_bad_upload_shows_its_sentence(browser, server, tmp_path):
    open_page(browser, server)
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture at all\n")
    browser.find_element(By.ID, "content-file").send_keys(str(bad))
    field(browser, "size", "48")
    browser.find_element(By.ID, "start").click()
    message = wait(lambda: text(browser, "err-content"), 20, "the error sentence")
    assert message.startswith("content image") and "can read" in message
    assert "Traceback" not in browser.page_source
    field(browser, "size", "-5")
    Select(browser.find_element(By.ID, "content-source")).select_by_value("sample:woman-with-hat")
    browser.find_element(By.ID, "start").click()
    assert "--size must be a positive number" in wait(
        lambda: text(browser, "err-size"), 20, "err-size"
    )
    assert text(browser, "err-content") == ""


def test_page_without_the_token_has_no_access(browser, server):
    open_page(browser, server, token="wrong")
    assert "token" in browser.page_source


def test_run_watch_stop_resume_download(browser, server, photo, downloads, real_weights):
    open_page(browser, server)
    fill(browser, photo, iters=14)
    browser.find_element(By.ID, "start").click()
    images, rows = set(), []

    def watching():
        images.add(browser.find_element(By.ID, "live-image").get_attribute("src"))
        rows.append(js(browser, "studio.rows.length"))
        return len(images - {"", None}) >= 3 and rows[-1] >= 4

    wait(watching, 120, "the image to change twice and the curve to grow")
    assert rows[-1] > min(r for r in rows if r > 0), "the loss curve did not grow"
    assert text(browser, "run-status") == "running"
    run_id = js(browser, "studio.watched")
    browser.find_element(By.ID, "stop").click()
    wait(lambda: text(browser, "run-status") == "stopped", 60, "the stop")
    stopped_rows = js(browser, "studio.rows.length")
    assert 4 <= stopped_rows < 14
    wait(lambda: browser.find_element(By.ID, "resume").is_enabled(), 10, "resume enabled")
    browser.find_element(By.ID, "resume").click()
    wait(lambda: text(browser, "run-status") == "done", 120, "the resumed run to finish")
    iterations = js(browser, "studio.rows.map(r => r.iteration)")
    assert iterations == list(range(1, 15)), iterations
    assert text(browser, "iteration").startswith("14")
    for link, name in (("download-png", "result.png"), ("download-log", "log.json")):
        browser.find_element(By.ID, link).click()
        path = downloads / f"minivgg-{run_id}-{name}"
        wait(path.is_file, 20, f"the download of {name}")
    assert Image.open(downloads / f"minivgg-{run_id}-result.png").size == (48, 34)
    log = json.loads((downloads / f"minivgg-{run_id}-log.json").read_text())
    assert [r["iteration"] for r in log["iterations"]] == list(range(1, 15))
    wait(lambda: browser.find_elements(By.ID, f"card-{run_id}"), 10, "the gallery card")
    assert "done" in browser.find_element(By.ID, f"card-{run_id}").text


def _stroke(browser, canvas, x_fraction):
    """A vertical mouse stroke over the whole height at ``x_fraction`` of the canvas width."""
    w, h = canvas.size["width"], canvas.size["height"]
    x = int((x_fraction - 0.5) * w)
    actions = ActionChains(browser)
    actions.move_to_element_with_offset(canvas, x, -h // 2 + 2).click_and_hold()
    for _ in range(8):
        actions.move_by_offset(0, (h - 4) // 8)
    actions.release().perform()


def test_paint_two_regions_run_two_styles_and_the_gallery(browser, server, photo, real_weights):
    base, token = server
    open_page(browser, server)
    fill(browser, photo, iters=40, styles=("sample:starry-night", "sample:woman-with-hat"))
    wait(lambda: js(browser, "studio.content !== null"), 20, "the content on the canvas")
    browser.execute_script("document.getElementById('brush-size').value = 60")
    canvas = browser.find_element(By.ID, "paint")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    browser.find_element(By.ID, "brush1").click()
    for x in (0.08, 0.25, 0.42):
        _stroke(browser, canvas, x)
    browser.find_element(By.ID, "brush2").click()
    for x in (0.58, 0.75, 0.92):
        _stroke(browser, canvas, x)
    assert js(browser, "studio.painted") == [True, True]
    browser.find_element(By.ID, "start").click()
    wait(lambda: text(browser, "run-status") == "done", 180, "the two-style run")
    run_id = js(browser, "studio.watched")
    h = {"X-Minivgg-Token": token}
    info = httpx.get(f"{base}/api/runs/{run_id}", headers=h).json()
    assert info["settings"]["masks"] and {"mask1.png", "mask2.png"} <= set(info["files"])
    mask1 = np.asarray(
        Image.open(
            io.BytesIO(httpx.get(f"{base}/api/runs/{run_id}/files/mask1.png", headers=h).content)
        ).convert("L"),
        dtype=float,
    )
    half = mask1.shape[1] // 2
    assert mask1[:, :half].mean() > 200 and mask1[:, half:].mean() < 30
    result = np.asarray(
        Image.open(
            io.BytesIO(httpx.get(f"{base}/api/runs/{run_id}/files/result.png", headers=h).content)
        ),
        dtype=float,
    )
    # The Starry Night is blue (mean R - B = -39), Woman with a Hat is not (0): the left half, painted
    # for the first, is bluer than the right half, painted for the second.
    half = result.shape[1] // 2
    red_minus_blue = [(r[..., 0] - r[..., 2]).mean() for r in (result[:, :half], result[:, half:])]
    assert red_minus_blue[0] < red_minus_blue[1] - 5, red_minus_blue
    # the gallery lists every run, and one re-opens with its settings
    wait(lambda: browser.find_elements(By.ID, f"card-{run_id}"), 10, "the gallery card")
    every = httpx.get(f"{base}/api/runs", headers=h).json()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#gallery .card")) == len(every)
    browser.set_window_size(1280, 1180)
    browser.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)
    shot = browser.get_screenshot_as_png()
    browser.set_window_size(1280, 1000)
    if os.environ.get("MINIVGG_UPDATE_SCREENSHOT") == "1":
        img = Image.open(io.BytesIO(shot)).convert("RGB")
        img.thumbnail((960, 960))
        img.quantize(colors=128).save(SCREENSHOT, optimize=True)
    browser.find_element(By.CSS_SELECTOR, f"#card-{run_id} button.open").click()
    wait(
        lambda: (
            browser.find_element(By.ID, "content-source").get_attribute("value") == f"run:{run_id}"
        ),
        10,
        "re-open",
    )
    assert browser.find_element(By.ID, "size").get_attribute("value") == "48"
    assert (
        Select(browser.find_element(By.ID, "style2-source")).first_selected_option.get_attribute(
            "value"
        )
        == f"run:{run_id}"
    )
    wait(lambda: js(browser, "studio.painted") == [True, True], 10, "the regions re-opened")
