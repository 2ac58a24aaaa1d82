"""Drive the app in headless Chromium like a visitor: predict an image, screenshot the result.

    python scripts/screenshot.py                       # starts the app on a free port, temp MAMMO_HOME
    python scripts/screenshot.py --url http://127.0.0.1:7860/ [--image examples/phantom_mass.png] \
        [--out docs/screenshot.png] [--submit benign]

Uses Debian's ``chromium`` (``make browser-deps``) through Playwright; never downloads a browser.
``--submit LABEL`` then submits the image as a case (it is stored: never against a real
deployment's dataset). Prints one JSON line: the predicted label, the heat map's pixel size, the
case id (with ``--submit``), the screenshot path. Exits non-zero when a step does not happen.
The README screenshot must show a synthetic image (``examples/``), never patient data.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, Playwright, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "MOST_LIKELY", "launch", "open_app", "load", "upload",
           "wait_uploaded", "predict", "overlay_size", "submit_predicted", "run", "main"]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
OVERLAY_LABEL = "Heat map over the image"
MOST_LIKELY = ".confidence-set dt.text"  # the class names beside the probability bars, most likely first
CASE_ID = re.compile(r"\b[0-9a-f]{32}\b")


def launch(playwright: Playwright) -> Browser:
    """Debian's chromium, headless, offline-friendly."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def open_app(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    load(page, url)
    return page


def load(page: Page, url: str) -> None:
    """Go to the app and wait for its tabs."""
    page.goto(url, timeout=60_000)
    page.get_by_role("tab", name="Predict").wait_for(timeout=60_000)


def predict(page: Page, image: Path) -> str:
    """Upload ``image`` in the Predict tab, click Predict, wait for the heat map; the label shown.

    Meant for a fresh page: a result already on the page would satisfy the waits.
    """
    upload(page, image, "Predict")
    page.get_by_role("button", name="Predict", exact=True).click()
    page.get_by_text("Malignancy score:").wait_for(timeout=60_000)  # not the history's column
    overlay_size(page)
    return page.locator(MOST_LIKELY).first.inner_text(timeout=10_000).strip()


def upload(page: Page, image: Path, tab: str) -> None:
    """Upload ``image`` into the first file box of ``tab``; wait until it is the box's value.

    A file already in the box is cleared first (its × button), as a visitor would. An upload can be
    dropped (while the page hydrates, or now and then on a loaded machine): each retry reloads the page
    first.
    """
    for attempt in range(3):
        page.get_by_role("tab", name=tab).click()
        # the tab's first file box; one holding a file has no file input until emptied (its ×): without
        # that, the file went into the next box with an input, and the retry after 20 s cleared it
        # (the box's own × sits among its icon buttons; an error badge's × is also named "Clear")
        icons = ".icon-button-wrapper"
        clear = page.locator(icons).get_by_role("button", name="Clear", exact=True)
        picker = page.locator("input[type=file]")
        block = page.locator(".block:visible").filter(has=picker.or_(clear)).first
        if not block.locator("input[type=file]").count():
            block.locator(icons).get_by_role("button", name="Clear", exact=True).first.click()
        block.locator("input[type=file]").set_input_files(str(image))
        try:
            wait_uploaded(page, image.name)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.reload(timeout=60_000)
            page.get_by_role("tab", name=tab).wait_for(timeout=60_000)


def wait_uploaded(scope: Page | Locator, name: str, timeout: float = 60_000) -> None:
    """Until the file ``name`` is in an upload box's file table in ``scope``: uploaded and the box's
    value. Its name shows earlier, under "Uploading 1 file...", and that line is gone before the
    upload's answer sets the value; a file set by the app in between is joined by the upload (two
    files in a one-file box). An error after 20 s if the name never shows (a dropped upload)."""
    on_its_way = scope.get_by_text(name, exact=True)
    in_table = scope.get_by_role("cell", name=name, exact=True)
    on_its_way.or_(in_table).locator("visible=true").first.wait_for(timeout=20_000)
    in_table.locator("visible=true").first.wait_for(timeout=timeout)


def overlay_size(page: Page) -> tuple[int, int]:
    """(width, height) of the heat-map image as loaded by the browser."""
    image = page.locator(".block").filter(has_text=OVERLAY_LABEL).locator("img").first
    image.wait_for(timeout=30_000)
    loaded = "i => i.complete && i.naturalWidth > 0"
    page.wait_for_function(loaded, arg=image.element_handle(), timeout=30_000)
    width, height = image.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    return width, height


def submit_predicted(page: Page, label: str) -> str:
    """Submit case tab: use the image from Predict, pick ``label``, submit; the receipt's case id."""
    page.get_by_role("tab", name="Submit case").click()
    page.get_by_role("button", name="Use the image from Predict").click()
    page.get_by_label("Confirmed label").click()
    page.get_by_role("option", name=label, exact=True).click()
    page.get_by_role("button", name="Submit case", exact=True).click()
    receipt = page.get_by_text(CASE_ID).first
    receipt.wait_for(timeout=60_000)
    return CASE_ID.search(receipt.inner_text()).group(0)


def run(url: str, image: Path, out: Path, submit: str | None = None) -> dict:
    """Predict ``image``, save a full-page screenshot to ``out``, optionally submit it as a case."""
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = open_app(browser, url)
            result = {"predicted": predict(page, image), "overlay_size": list(overlay_size(page))}
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            if submit:
                result["case_id"] = submit_predicted(page, submit)
        finally:
            browser.close()
    return {**result, "screenshot": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url", help="a running app (default: start one with a temporary MAMMO_HOME)")
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "phantom_mass.png")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--submit", metavar="LABEL", help="then submit the image as a case with this label")
    args = parser.parse_args(argv)
    if not args.image.is_file():
        parser.error(f"no image at {args.image}")
    with ExitStack() as stack:
        url = args.url
        if url is None:
            sys.path.insert(0, str(ROOT / "tests"))
            from app_server import AppProcess  # the launcher the end-to-end tests use

            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mammo-shot-"))) / "home"
            url = stack.enter_context(AppProcess(home)).url
        print(json.dumps(run(url, args.image, args.out, args.submit)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
