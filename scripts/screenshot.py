"""Drive the app in headless Chromium like a visitor: predict an image, submit it as a case, screenshot.

    python scripts/screenshot.py --url http://127.0.0.1:7860/ [--image examples/phantom_mass.png] \
        [--out docs/screenshot.png] [--label benign]

Uses Debian's ``chromium`` (``make browser-deps``) through Playwright; never downloads a browser.
Prints one JSON line: the predicted label text, the case id from the receipt, the screenshot path.
Exits non-zero when a step does not happen.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


def run(url: str, image: Path, out: Path, label: str) -> dict:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url, timeout=60_000)
        page.get_by_role("tab", name="Predict").wait_for(timeout=60_000)
        page.locator("input[type=file]").first.set_input_files(str(image))
        page.get_by_text(image.name).first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Predict", exact=True).click()
        page.get_by_text("Malignancy score").wait_for(timeout=60_000)
        page.locator("img[src*='image.png'], img[src*='.png']").last.wait_for(timeout=30_000)
        predicted = page.locator(".output-class").first.inner_text(timeout=10_000)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)

        page.get_by_role("tab", name="Submit case").click()
        page.get_by_role("button", name="Use the image from Predict").click()
        page.get_by_label("Confirmed label").click()
        page.get_by_role("option", name=label, exact=True).click()
        page.get_by_role("button", name="Submit case", exact=True).click()
        receipt = page.get_by_text(re.compile(r"[0-9a-f]{32}")).first
        receipt.wait_for(timeout=60_000)
        case_id = re.search(r"[0-9a-f]{32}", receipt.inner_text()).group(0)
        page.screenshot(path=str(out.with_name(out.stem + "_submit.png")), full_page=True)
        browser.close()
    return {"predicted": predicted.strip(), "case_id": case_id, "screenshot": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url", required=True, help="the running app")
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "phantom_mass.png")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--label", default="benign", help="label to submit the case with")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.url, args.image, args.out, args.label)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
