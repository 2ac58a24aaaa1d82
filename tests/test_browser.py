"""A visitor in headless Chromium: upload an image in Predict, see label and heat map, submit it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from app_server import ROOT, AppProcess

from mammo.store import CaseStore


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (`make browser-deps` installs it)")
def test_predict_then_submit_by_clicking(tmp_path: Path) -> None:
    with AppProcess(tmp_path / "home") as app:
        done = subprocess.run(
            [sys.executable, "scripts/screenshot.py", "--url", app.url, "--out", str(tmp_path / "shot.png"),
             "--image", str(ROOT / "examples" / "phantom_mass.png"), "--label", "benign"],
            cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["predicted"] in {"normal", "benign", "malignant"}
        assert (tmp_path / "shot.png").stat().st_size > 20_000
        cases = CaseStore(["normal", "benign", "malignant"], app.home / "cases").recent(5)
        assert [c["case_id"] for c in cases] == [result["case_id"]] and cases[0]["label"] == "benign"
