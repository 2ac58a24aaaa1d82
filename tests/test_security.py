"""Security against the live app: who may submit, retrain and roll back; the upload cap; file names never
paths; no file served or read outside the uploads; tokens never logged; weights from safetensors only.

The main app stores cases and versions on the Hub-protocol server of ``tests/hub_server.py`` (on
127.0.0.1; Xet transfer is not covered), so HF_TOKEN is really sent with every Hub request.
DICOM de-identification is tested in ``tests/test_dicom_privacy.py``.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from app_server import ROOT, AppProcess
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from helpers import NEXT, PACKAGED, SERVED
from hub_server import HubServer
from PIL import Image

from mammo.access import AccessDenied
from mammo.config import settings
from mammo.model import ModelError, load
from mammo.service import MammoService
from mammo.ui.gallery import EXAMPLES_FOLDER, PHANTOMS

TOKEN = "hf_fake_secret_token_123"
CASES_REPO, MODELS_REPO = "mammo-tester/cases", "mammo-tester/models"
IMAGE = ROOT / "examples" / "phantom_mass.png"
SHARD = r"data/train-\d{8}T\d{12}Z-[0-9a-f]{32}\.parquet"


@pytest.fixture(scope="module")
def hub():
    server = HubServer(token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def app(hub: HubServer, tmp_path_factory: pytest.TempPathFactory):
    """The open app (anyone may submit), on the Hub backend, with a 1 MB upload cap."""
    root = tmp_path_factory.mktemp("security")
    env = {"MAMMO_DATASET_REPO": CASES_REPO, "MAMMO_MODEL_REPO": MODELS_REPO, "MAMMO_MAX_UPLOAD_MB": "1",
           "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HOME": str(root / "hf"), "HF_HUB_OFFLINE": "0",
           "HF_DATASETS_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    # its store neither under the folder it starts from nor under the system's temporary folder, as a
    # Space's /data is: Gradio refused to offer the Models tab's files from there (a walk)
    for folder in ("elsewhere", "tmp"):
        (root / folder).mkdir()
    env["TMPDIR"] = str(root / "tmp")
    with AppProcess(root / "home", env=env, cwd=root / "elsewhere") as process:
        yield process


@pytest.fixture(scope="module")
def restricted(tmp_path_factory: pytest.TempPathFactory):
    """An app where only alice may retrain or roll back and only bob may submit."""
    home = tmp_path_factory.mktemp("restricted") / "home"
    with AppProcess(home, env={"MAMMO_TRAINERS": "alice", "MAMMO_SUBMITTERS": "bob"}) as process:
        yield process


def every_file(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.is_file()]


def png_of_size(path: Path, low: int, high: int, seed: int = 0) -> Path:
    """A valid 16-bit noise PNG (pixels set by ``seed``) whose size lies in [low, high) bytes."""
    side = int((low / 2) ** 0.5)
    while True:
        noise = np.random.default_rng([seed, side]).integers(0, 65535, (side, side), dtype=np.uint16)
        Image.fromarray(noise).save(path)
        if low <= path.stat().st_size < high:
            return path
        side += 1 if path.stat().st_size < low else -1


def test_user_file_names_are_never_paths(app: AppProcess, hub: HubServer, tmp_path: Path) -> None:
    gradio_tmp = app.home.parent / "gradio"
    names = ["../../evil.png", "..\\..\\evil-backslash.png", "/etc/evil-absolute.png",
             "..;rm -rf ~;$(id)\n évil name.png"]
    for i, name in enumerate(names):
        data = png_of_size(tmp_path / f"{i}.png", 20_000, 200_000, seed=i).read_bytes()
        file = app.upload(name, data)
        assert Path(file["path"]).resolve().is_relative_to(gradio_tmp.resolve()), file["path"]
        kind, receipt = app.call("submit_case", [file, "normal", None, None, None, None, False, None, ""])
        assert kind == "complete" and receipt[0]["status"] == "stored", receipt
    odd = tmp_path / "..;rm -rf ~;$(id) évil.png"  # and through gradio_client, which sends the name as is
    shutil.copy(IMAGE, odd)
    receipt = app.client().predict(handle_file(str(odd)), "benign", api_name="/submit_case")
    assert receipt["status"] == "stored"
    outside = [p for p in every_file(app.home.parent) if "evil" in p.name
               and not p.is_relative_to(gradio_tmp)]
    assert outside == [] and not Path("/etc/evil-absolute.png").exists()
    assert not list(ROOT.glob("*evil*")) and not list(app.home.parent.parent.glob("*evil*"))
    shards = [f for f in hub.files(CASES_REPO) if f.startswith("data/")]
    assert len(shards) == len(names) + 1 and all(re.fullmatch(SHARD, f) for f in shards)
    # (queued under data/, or the index columns of a delivered one under .delivered/: named alike)
    assert all(re.fullmatch(SHARD, p.relative_to(p.parents[1]).as_posix().replace(".delivered/", "data/", 1))
               for p in every_file(app.home / "outbox") if p.suffix == ".parquet")


@pytest.mark.parametrize("target", ["/etc/passwd", str(ROOT / "app.py"), "MAMMO_HOME"])
def test_server_paths_are_not_accepted_as_inputs(app: AppProcess, target: str) -> None:
    if target == "MAMMO_HOME":
        target = str(every_file(app.home)[0])
    file = {"path": target, "meta": {"_type": "gradio.FileData"}}
    kind, answer = app.call("predict", [file, "Grad-CAM", 0.4])
    assert kind == "error" and "not uploaded by a user" in answer["error"], answer
    assert app.client().predict(handle_file(str(IMAGE)), api_name="/predict")[2]["label"]


@pytest.mark.parametrize("target", ["/etc/passwd", str(ROOT / "app.py"), "MAMMO_HOME"])
def test_gradio_serves_no_file_outside_its_uploads(app: AppProcess, target: str) -> None:
    if target == "MAMMO_HOME":
        target = str(every_file(app.home)[0])
    answer = httpx.get(f"{app.url}gradio_api/file={target}", timeout=10)
    assert answer.status_code in (403, 404), (target, answer.status_code)
    assert "root:" not in answer.text and "gr.Blocks" not in answer.text


def test_the_token_is_used_but_never_logged_or_stored(app: AppProcess, hub: HubServer) -> None:
    client = app.client()
    client.predict(handle_file(str(IMAGE)), api_name="/predict")
    receipt = client.predict(handle_file(str(ROOT / "examples" / "phantom_plain.png")), "normal",
                             api_name="/submit_case")
    versions = client.predict(api_name="/models")
    assert receipt["status"] == "stored" and versions[0]["version"] == "v1"
    assert "model.safetensors" in hub.files(MODELS_REPO, "model")
    assert any(path.endswith(".parquet") for path in hub.files(CASES_REPO))
    assert ("POST", f"/api/datasets/{CASES_REPO}/commit/main") in hub.calls  # a write: the token was sent
    assert TOKEN not in app.log() and TOKEN not in json.dumps([receipt, versions])
    for path in every_file(app.home.parent):  # MAMMO_HOME, HF_HOME, Gradio's uploads
        assert TOKEN.encode() not in path.read_bytes(), path


def test_upload_cap_is_the_configured_megabytes(app: AppProcess, tmp_path: Path) -> None:
    """MAMMO_MAX_UPLOAD_MB=1 means 1,000,000 bytes for every endpoint (the store's unit), not 1 MiB."""
    under = png_of_size(tmp_path / "under.png", 900_000, 990_000)
    assert app.client().predict(handle_file(str(under)), api_name="/predict")[2]["label"]
    over = png_of_size(tmp_path / "over.png", 1_010_000, 1_040_000)  # over 1 MB, under 1 MiB
    answer = httpx.post(f"{app.url}gradio_api/upload", files={"files": ("over.png", over.read_bytes())},
                        timeout=30)
    assert answer.status_code == 413, "the server accepts an upload over MAMMO_MAX_UPLOAD_MB"


def test_submitting_can_be_restricted(restricted: AppProcess) -> None:
    with pytest.raises(AppError, match="limited to the submitters of this app; you are not signed in"):
        restricted.client().predict(handle_file(str(IMAGE)), "benign", api_name="/submit_case")
    assert not every_file(restricted.home / "cases" / "data")


def queue_call(app: AppProcess, session: str, api_name: str, data: list) -> dict:
    """Run any event of the page (private ones too) in ``session``, as a browser would."""
    config = httpx.get(f"{app.url}config", timeout=10).json()
    index = next(i for i, d in enumerate(config["dependencies"]) if d["api_name"] == api_name)
    httpx.post(f"{app.url}gradio_api/queue/join", timeout=10,
               json={"data": data, "fn_index": index, "session_hash": session}).raise_for_status()
    with httpx.stream("GET", f"{app.url}gradio_api/queue/data", params={"session_hash": session},
                      timeout=120) as stream:
        for line in stream.iter_lines():
            if '"process_completed"' in line:
                return json.loads(line.removeprefix("data: "))
    raise AssertionError(f"{api_name} did not complete")


def test_a_versions_files_are_offered_and_nothing_else_of_the_store(app: AppProcess) -> None:
    """The Models tab offers a version's weights, config and card from the registry's folders (any
    version is for anyone), and the Predict tab its example films, wherever the store and the app lie;
    the rest of MAMMO_HOME (the cases) is not served."""
    session = uuid.uuid4().hex
    versions = queue_call(app, session, "models", [])["output"]["data"][0]
    assert queue_call(app, session, "models_views", [versions])["success"]
    answer = queue_call(app, session, "version_files", ["v1"])
    assert answer["success"], answer
    files = {Path(f["path"]).name: f for f in answer["output"]["data"][0]}
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    config = httpx.get(files["config.json"]["url"], timeout=30)
    assert config.status_code == 200 and config.json()["mammo"]["version"] == "v1"
    # and an example film picked (the repository's examples/: neither folder either)
    picked = queue_call(app, session, "pick_phantom", [PHANTOMS.index(EXAMPLES_FOLDER / "phantom_mass.png")])
    assert picked["success"], picked
    assert httpx.get(picked["output"]["data"][0]["url"], timeout=30).content.startswith(b"\x89PNG")
    # nothing else of the store: the cases, a rejected candidate's folder (weights trained on cases),
    # the rest of the Hub cache (a review found models/rejected/ served)
    for secret in (app.home / "cases" / "not-for-the-web.txt",
                   app.home / "models" / "rejected" / "20261205T000000000000Z-abcdef12" / "report.json",
                   app.home / "cache" / "hub" / "datasets--owner--cases" / "not-for-the-web.txt"):
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text("not for the web")
        assert httpx.get(f"{app.url}gradio_api/file={secret}", timeout=10).status_code in (403, 404), secret


def test_retrain_and_rollback_refused_for_non_trainers(restricted: AppProcess) -> None:
    client = restricted.client()
    with pytest.raises(AppError, match="Retraining is limited to the trainers of this app"):
        client.predict(1, 64, True, api_name="/retrain")
    # rollback has no API name, but its event is reachable over HTTP like any event of the page:
    # list the versions in a session (so "v1" is a valid choice), then press "serve this version"
    session = uuid.uuid4().hex
    versions = queue_call(restricted, session, "models", [])["output"]["data"][0]
    assert queue_call(restricted, session, "models_views", [versions])["success"]
    answer = queue_call(restricted, session, "rollback", ["v1"])
    assert not answer["success"] and "limited to the trainers" in answer["output"]["error"], answer
    assert [v["version"] for v in client.predict(api_name="/models")] == PACKAGED
    assert sorted(p.name for p in (restricted.home / "models").iterdir() if p.is_dir()) == PACKAGED
    # and its button says so here (the browser test's app, where everyone may, does not)
    page = httpx.get(f"{restricted.url}config", timeout=10).json()
    buttons = [c["props"].get("value") for c in page["components"] if c.get("type") == "button"]
    assert "Serve this version again… (trainers only)" in buttons, buttons


def test_rollback_refused_in_the_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAMMO_TRAINERS", "alice")
    for name in ("MAMMO_MODEL_REPO", "MAMMO_DATASET_REPO", "SPACE_ID"):
        monkeypatch.delenv(name, raising=False)
    service = MammoService(settings())
    try:
        for user in (None, "mallory"):
            with pytest.raises(AccessDenied, match="MAMMO_TRAINERS"):
                service.rollback("v1", user=user)
        assert [v["version"] for v in service.versions()] == PACKAGED
        assert service.predictor.version == SERVED
        assert service.rollback("v1", user="alice") == NEXT == service.predictor.version
    finally:
        service.close()


def _unsafe_loads(source: str) -> list[str]:
    """Calls of torch.load without weights_only=True, and any other way to unpickle, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
            flags = [getattr(k.value, "value", None) for k in node.keywords if k.arg == "weights_only"]
            found += [] if flags == [True] else [ast.unparse(node)]
        elif isinstance(node, ast.ImportFrom) and node.module == "torch":
            found += ["from torch import load" for a in node.names if a.name == "load"]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [m for m in modules if m.split(".")[0] in ("pickle", "dill", "joblib", "cloudpickle")]
    return found


def test_weights_load_from_safetensors_only(tmp_path: Path) -> None:
    sources = [*(ROOT / "mammo").rglob("*.py"), ROOT / "app.py"]
    assert len(sources) > 10
    assert {str(p.relative_to(ROOT)): _unsafe_loads(p.read_text()) for p in sources
            if _unsafe_loads(p.read_text())} == {}
    planted = "import torch, pickle\nfrom torch import load\ntorch.load(f)\ntorch.load(f, weights_only=False)"
    assert sorted(_unsafe_loads(planted)) == [  # the scan finds what it must
        "from torch import load", "pickle", "torch.load(f)", "torch.load(f, weights_only=False)"]
    shutil.copy(ROOT / "mammo" / "weights" / "v1" / "config.json", tmp_path / "config.json")
    torch.save({"conv_stem.weight": torch.zeros(1)}, tmp_path / "pytorch_model.bin")  # a pickle
    with pytest.raises(ModelError, match="no model.safetensors"):
        load(tmp_path)
