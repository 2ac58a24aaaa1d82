"""Every file of the bad-input corpus through the live app: a clear message or acceptance.

The corpus is tests/data/bad/ (made by scripts/make_bad_inputs.py); MANIFEST.json gives the
expected outcome. After each rejection the next request is served and the store is unchanged.
Run with ``-s`` to print the input -> outcome table used in the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from app_server import ROOT, AppProcess
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from helpers import SERVED, script_here
from PIL import Image

from mammo.retraining import RetrainOptions
from mammo.store import CaseStore

BAD = ROOT / "tests" / "data" / "bad"
MANIFEST = json.loads((BAD / "MANIFEST.json").read_text())
LABELS = ["normal", "benign", "malignant"]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("bad") / "home"
    with AppProcess(home, env={"MAMMO_MAX_UPLOAD_MB": "1"}) as process:
        yield process


@pytest.fixture(scope="module")
def client(app: AppProcess):
    return app.client()


@pytest.fixture(scope="module")
def table() -> list[str]:
    """Rows of the README's input -> outcome table, filled by the tests in order, printed by the last."""
    return []


def cases(app: AppProcess) -> int:
    return sum(CaseStore(LABELS, app.home / "cases").counts().values())


def outcome(call) -> str:
    try:
        call()
    except AppError as error:
        return str(error)
    return "accepted"


def test_committed_corpus_is_what_the_script_makes(tmp_path: Path) -> None:
    done = script_here("scripts/make_bad_inputs.py", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "MANIFEST.json").read_text()) == MANIFEST
    for entry in MANIFEST:
        assert (tmp_path / entry["file"]).read_bytes() == (BAD / entry["file"]).read_bytes(), entry["file"]


def test_every_corpus_file(client, app: AppProcess, table: list[str]) -> None:
    good = ROOT / "examples" / "phantom_mass.png"
    for entry in MANIFEST:
        path = str(BAD / entry["file"])
        before = cases(app)
        predicted = outcome(lambda p=path: client.predict(handle_file(p), api_name="/predict"))
        submitted = outcome(lambda p=path: client.predict(handle_file(p), "normal", api_name="/submit_case"))
        expected = entry["outcome"]
        for got in (predicted, submitted):
            if expected == "accepted":
                assert got == "accepted", (entry, got)
            else:
                assert expected in got, (entry, got)
        assert cases(app) == before + (expected == "accepted")
        assert client.predict(handle_file(str(good)), api_name="/predict")[2]["model_version"] == SERVED
        shown = "accepted" if expected == "accepted" else "refused: " + predicted
        table.append(f"| {entry['what']} | {shown} |")


def test_oversized_upload_label_and_metadata(client, app: AppProcess, tmp_path: Path, table: list[str],
                                             capsys) -> None:
    big = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 65535, (1100, 1000), dtype=np.uint16)
    Image.fromarray(noise).save(big)  # ~2 MB of incompressible 16-bit noise, over the 1 MB cap
    assert big.stat().st_size > 1_500_000
    before = cases(app)
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # gradio_client checks first
        client.predict(handle_file(str(big)), "normal", api_name="/submit_case")
    with big.open("rb") as handle:  # and the server refuses it too, for any other client
        answer = httpx.post(app.url + "gradio_api/upload", files={"files": ("big.png", handle)}, timeout=30)
    assert answer.status_code == 413 and "1" in answer.text
    table.append(f"| file over MAMMO_MAX_UPLOAD_MB ({big.stat().st_size / 1e6:.1f} MB, limit 1) | refused "
                 f"by gradio_client before upload; HTTP upload: {answer.status_code} {answer.text.strip()} |")
    image = str(ROOT / "examples" / "phantom_plain.png")
    unknown = outcome(lambda: client.predict(handle_file(image), "cancer", api_name="/submit_case"))
    assert "Unknown label 'cancer'; choose one of normal, benign, malignant" in unknown
    table.append(f"| label not in the label set (`cancer`) | refused: {unknown} |")
    long_notes = "<p>" + "x" * 100_000
    too_long = outcome(
        lambda: client.predict(handle_file(image), "normal", notes=long_notes, api_name="/submit_case"))
    assert "the limit is 2000" in too_long
    table.append(f"| notes of 100 kB | refused: {too_long} |")
    for not_text in ({"x": 1}, 12345):  # Gradio's text box would store their repr as the notes
        refused = outcome(lambda notes=not_text: client.predict(handle_file(image), "normal", notes=notes,
                                                                 api_name="/submit_case"))
        assert f"Notes must be text, got {type(not_text).__name__}" in refused, refused
    table.append(f"| notes sent as a dict or a number | refused: {refused} |")
    out_of_range = outcome(lambda: client.predict(handle_file(image), "Lesion map", 5, api_name="/predict"))
    assert "Heat-map opacity: Value 5 is greater than maximum value 1" in out_of_range, out_of_range
    table.append(f"| opacity 5 (range 0-1) | refused: {out_of_range} |")
    most = RetrainOptions.EPOCH_RANGE[1]  # the page's slider stops where the service does
    too_many = outcome(lambda: client.predict(most + 1, 0, True, api_name="/retrain"))
    assert f"Epochs: Value {most + 1} is greater than maximum value {most}" in too_many, too_many
    table.append(f"| {most + 1} epochs (range 1-{most}) | refused: {too_many} |")
    worded = outcome(lambda: client.predict(1, "x", True, api_name="/retrain"))  # Gradio's TypeError
    assert "Image size: a whole number, got 'x'." in worded, worded
    endless = outcome(lambda: client.predict(1, "inf", True, api_name="/retrain"))  # an OverflowError
    assert "Image size: a whole number, got 'inf'." in endless, endless
    not_a_count = outcome(lambda: client.predict("nan", 0, True, api_name="/retrain"))  # passed the slider
    assert f"Epochs: a whole number from 1 to {most}, got 'nan'." in not_a_count, not_a_count
    table.append(f"| image size 'x' | refused: {worded} |")
    # a retrain is expensive: what is not a whole number or a yes/no is refused, not rounded or guessed
    # (2.5 epochs ran as 2; the text "false" started from the current model)
    fraction = outcome(lambda: client.predict(2.5, 0, True, api_name="/retrain"))
    assert f"Epochs: a whole number from 1 to {most}, got '2.5'." in fraction, fraction
    rounded = outcome(lambda: client.predict(1, 96.9, True, api_name="/retrain"))  # the box rounded it to 97
    assert "Image size: a whole number, got '96.9'." in rounded, rounded
    worded_no = outcome(lambda: client.predict(1, 0, "maybe", api_name="/retrain"))
    assert "must be true or false (yes or no), got 'maybe'." in worded_no, worded_no
    table.append(f"| 2.5 epochs; image size 96.9; 'maybe' to start from the current model | refused: "
                 f"{fraction} {rounded} {worded_no} |")
    yes = outcome(lambda: client.predict(handle_file(image), "Lesion map", True, api_name="/predict"))
    assert "Heat-map opacity: a number from 0 to 1, got 'True'." in yes, yes  # was taken as 1
    absurd = outcome(lambda: client.predict(handle_file(image), "x" * 100_000, api_name="/predict"))
    assert absurd.startswith("Unknown heat-map method 'xxxxx") and len(absurd) < 300, absurd[:400]
    table.append(f"| a heat-map method of 100 kB | refused, quoted short: {absurd} |")
    as_text = outcome(lambda: client.predict(image, "Lesion map", api_name="/predict"))  # no handle_file
    assert as_text.startswith(f"The image must be sent as a file, got '{image[:20]}") and \
        as_text.endswith("pass gradio_client.handle_file(path) (or a URL), not the path as text."), as_text
    not_a_file = outcome(lambda: client.predict(5, "normal", api_name="/submit_case"))
    assert not_a_file.startswith("The image must be sent as a file, got 5:"), not_a_file
    table.append(f"| a file's path sent as text, not `handle_file(path)` | refused: {as_text} |")
    log = app.log()  # refusals are one line each, as every other refusal: no traceback
    assert "Notes field refused: Nothing was stored" in log and "Heat-map opacity field refused" in log
    assert "image file refused: a value of type str, not a file" in log and image not in log  # no path
    assert "Traceback" not in log
    assert cases(app) == before
    html = "<script>alert(1)</script> <b>spiculated</b>"
    receipt = client.predict(handle_file(image), " Normal", notes=html, api_name="/submit_case")
    assert receipt["label"] == "normal"  # spelt as the label set spells it, as the view and side are
    recent = CaseStore(LABELS, app.home / "cases").recent(50)
    stored = [c for c in recent if c["case_id"] == receipt["case_id"]]
    assert stored[0]["metadata"]["notes"] == html  # kept verbatim as plain text, never rendered
    table.append("| notes with HTML (`<script>`, `<b>`) | accepted; stored verbatim as plain text |")
    with capsys.disabled():
        print("\n| input | outcome (/predict and /submit_case) |\n|---|---|\n" + "\n".join(table))
