"""Security and privacy against the live app: no DICOM tag stored or logged, file names never paths,
Gradio serves no file outside its uploads, tokens never logged, submitters restricted, safetensors only."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import datasets
import httpx
import pytest
from app_server import ROOT, AppProcess
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from mammo.model import ModelError, load

DICOM = ROOT / "examples" / "phantom_fake_tags.dcm"
IDENTIFIERS = ["PHANTOM^TEST", "PHANTOM", "FAKE-0000", "19000101", "20000101"]
TOKEN = "hf_fake_secret_token_123"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("security") / "home"
    with AppProcess(home, env={"HF_TOKEN": TOKEN}) as process:  # no repo ids: local store
        yield process


def every_byte_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_no_dicom_tag_reaches_the_store_or_the_logs(app: AppProcess) -> None:
    assert all(name.encode() in DICOM.read_bytes() for name in IDENTIFIERS)  # they are in the upload
    client = app.client()
    details = client.predict(handle_file(str(DICOM)), api_name="/predict")[2]
    assert details["label"] in details["probabilities"]
    receipt = client.predict(handle_file(str(DICOM)), "malignant", api_name="/submit_case")
    stored = every_byte_under(app.home) + app.log().encode()
    for name in IDENTIFIERS:
        assert name.encode() not in stored, name
    cases = datasets.load_dataset(str(app.home / "cases"), split="train")
    row = cases.filter(lambda r: r == receipt["case_id"], input_columns="case_id")[0]
    text = " ".join(str(v) for k, v in row.items() if k != "image")
    assert not any(name in text for name in IDENTIFIERS)


def test_user_file_names_are_never_paths(app: AppProcess, tmp_path: Path) -> None:
    odd = tmp_path / "..;rm -rf ~;$(id) évil name.png"
    shutil.copy(ROOT / "examples" / "phantom_plain.png", odd)
    app.client().predict(handle_file(str(odd)), "normal", api_name="/submit_case")
    names = [p.relative_to(app.home).as_posix() for p in app.home.rglob("*") if p.is_file()]
    assert not any("évil" in n or "rm -rf" in n for n in names)
    shards = [n for n in names if n.startswith("cases/data/")]
    pattern = r"cases/data/train-\d{8}T\d{12}Z-[0-9a-f]{32}\.parquet"
    assert shards and all(re.fullmatch(pattern, n) for n in shards)
    assert not (tmp_path.parent / "evil name.png").exists()


@pytest.mark.parametrize("target", ["/etc/passwd", str(ROOT / "app.py"), "HOME/cases/README.md"])
def test_gradio_serves_no_file_outside_its_uploads(app: AppProcess, target: str) -> None:
    target = target.replace("HOME", str(app.home))
    answer = httpx.get(f"{app.url}gradio_api/file={target}", timeout=10)
    assert answer.status_code in (403, 404), (target, answer.status_code)
    assert "root:" not in answer.text and "gr.Blocks" not in answer.text


def test_the_token_is_never_logged(app: AppProcess) -> None:
    client = app.client()
    client.predict(handle_file(str(ROOT / "examples" / "phantom_mass.png")), api_name="/predict")
    client.predict(api_name="/models")
    assert TOKEN not in app.log() and TOKEN.encode() not in every_byte_under(app.home)


def test_submitters_can_be_restricted(tmp_path: Path) -> None:
    with AppProcess(tmp_path / "home", env={"MAMMO_SUBMITTERS": "bob"}) as app:
        with pytest.raises(AppError, match="MAMMO_SUBMITTERS"):
            app.client().predict(handle_file(str(ROOT / "examples" / "phantom_mass.png")), "benign",
                                 api_name="/submit_case")
        assert not (app.home / "cases" / "data").exists() or not any((app.home / "cases" / "data").iterdir())


def test_weights_load_from_safetensors_only(tmp_path: Path) -> None:
    for source in [*(ROOT / "mammo").rglob("*.py"), ROOT / "app.py"]:
        for call in re.findall(r"torch\.load\([^)]*\)", source.read_text()):
            assert "weights_only=True" in call, (source, call)
    shutil.copy(ROOT / "mammo" / "weights" / "v1" / "config.json", tmp_path / "config.json")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle would run code here")
    with pytest.raises(ModelError, match="safetensors"):
        load(tmp_path)
