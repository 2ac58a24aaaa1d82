"""A visitor in headless Chromium: upload an image in Predict, see label and heat map, submit it as a case.

Drives Debian's ``chromium`` (``make browser-deps``) with Playwright through the helpers of
``scripts/screenshot.py`` (the script that takes the README screenshot), so both stay in step.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from app_server import ROOT, AppProcess
from PIL import Image

from mammo.store import CaseStore

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
LABELS = ["normal", "benign", "malignant"]


def load_screenshot_script():
    spec = importlib.util.spec_from_file_location("screenshot", ROOT / "scripts" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shot = load_screenshot_script()
pytestmark = pytest.mark.skipif(not os.access(shot.CHROMIUM, os.X_OK),
                                reason=f"Debian's chromium is not at {shot.CHROMIUM} "
                                       "(`make browser-deps` installs it)")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real mini-MIAS mammogram cropped to a non-square shape; a synthetic phantom without MAMMO_DATA."""
    root = os.environ.get("MAMMO_DATA")
    if not root or not (Path(root) / "mias" / "benign").is_dir():
        return ROOT / "examples" / "phantom_mass.png"
    source = sorted((Path(root) / "mias" / "benign").glob("*.png"))[0]
    path = tmp_path_factory.mktemp("browser") / f"crop_{source.name}"
    Image.open(source).crop((100, 0, 400, 512)).save(path)  # 300 x 512
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    with AppProcess(tmp_path_factory.mktemp("browser_app") / "home") as process:
        yield process


@pytest.fixture(scope="module")
def page(app: AppProcess):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = shot.launch(playwright)
        try:
            yield shot.open_app(browser, app.url)
        finally:
            browser.close()


def test_predict_then_submit_by_clicking(page, app: AppProcess, image: Path, tmp_path: Path) -> None:
    predicted = shot.predict(page, image)
    assert predicted in LABELS
    assert shot.overlay_size(page) == Image.open(image).size  # the heat map has the input's shape
    assert page.get_by_text("Your predictions this session").is_visible()
    assert page.locator("table").filter(has_text=image.name).count() == 1  # the session history row
    page.screenshot(path=str(tmp_path / "predict.png"), full_page=True)
    assert (tmp_path / "predict.png").stat().st_size > 20_000

    case_id = shot.submit_predicted(page, "benign")
    cases = CaseStore(LABELS, app.home / "cases").recent(5)
    assert [c["case_id"] for c in cases] == [case_id] and cases[0]["label"] == "benign"
    assert cases[0]["metadata"] == {}  # nothing filled in, nothing stored


def test_models_tab_shows_the_card_without_its_yaml_header(page) -> None:
    page.get_by_role("tab", name="Models").click()
    page.get_by_text("Intended use").first.wait_for(timeout=30_000)
    assert page.get_by_role("cell", name="v1", exact=True).first.is_visible()
    # the card's Hub metadata block (--- library_name: ... ---) is for the Hub, not for the visitor
    assert page.get_by_text("library_name:").count() == 0
