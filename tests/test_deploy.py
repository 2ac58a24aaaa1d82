"""``scripts/deploy_space.py`` against the Hub-protocol test server (tests/hub_server.py).

The real ``huggingface_hub`` client creates the Space, uploads through preupload + legacy LFS
(Xet transfer is not covered), and sets variables, the token secret and hardware. Nothing builds
or runs the Space here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from app_server import free_port
from hub_server import USER
from huggingface_hub import HfApi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import deploy_space  # noqa: E402

SPACE = f"{USER}/mammo-space"


def _tracked(prefix: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", prefix], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_deploy_creates_the_space_with_what_it_runs_and_nothing_else(hub_server, monkeypatch, capsys):
    monkeypatch.setenv("MAMMO_SPACE_TOKEN", "hf_space_scoped_token")
    code = deploy_space.main(["--space", SPACE, "--private", "--dataset-repo", f"{USER}/cases",
                              "--model-repo", f"{USER}/models", "--base-data", f"{USER}/mias",
                              "--trainers", "alice,bob", "--hardware", "cpu-upgrade"])
    assert code == 0
    assert f"{hub_server.url}/spaces/{SPACE}" in capsys.readouterr().out

    files = hub_server.files(SPACE, repo_type="space")
    assert {"app.py", "requirements.txt", "README.md", ".gitattributes", "LICENSE",
            "mammo/weights/v2/model.safetensors", "mammo/service.py"} <= set(files)
    assert set(_tracked("examples/")) <= set(files)
    never = ("tests/", "scripts/", "runs/", "docs/", ".ci/", "shared", "data/")
    assert not [f for f in files if f.startswith(never) or "__pycache__" in f or f.endswith(".pyi")]
    assert set(files) == set(deploy_space.space_files())  # exactly the tracked files it needs
    # binary files through LFS, as the Hub requires; code and text as plain git files
    for path in ("mammo/weights/v2/model.safetensors", "mammo/weights/v1/model.safetensors",
                 "examples/cbis_ddsm_malignant_rcc.png", "examples/phantom_fake_tags.dcm"):
        assert hub_server.is_lfs(SPACE, path, repo_type="space"), path
    for path in ("app.py", "README.md", "mammo/weights/v2/config.json"):
        assert not hub_server.is_lfs(SPACE, path, repo_type="space"), path
    assert hub_server.read(SPACE, "mammo/weights/v2/model.safetensors", repo_type="space") == \
        (ROOT / "mammo/weights/v2/model.safetensors").read_bytes()
    gitattributes = hub_server.read(SPACE, ".gitattributes", repo_type="space")
    assert gitattributes == (ROOT / ".gitattributes").read_bytes()

    settings = hub_server.space_settings(SPACE)
    assert settings["sdk"] == "gradio" and settings["private"] and settings["hardware"] == "cpu-upgrade"
    assert settings["variables"] == {"MAMMO_DATASET_REPO": f"{USER}/cases",
                                     "MAMMO_MODEL_REPO": f"{USER}/models",
                                     "MAMMO_BASE_DATA": f"{USER}/mias", "MAMMO_TRAINERS": "alice,bob"}
    assert settings["secrets"] == {"HF_TOKEN": "hf_space_scoped_token"}
    # the secret's value is never readable back; variables are
    assert "HF_TOKEN" not in HfApi().get_space_variables(SPACE)


def test_redeploy_updates_the_space_and_removes_files_it_no_longer_has(hub_server, monkeypatch, capsys):
    monkeypatch.delenv("MAMMO_SPACE_TOKEN", raising=False)
    assert deploy_space.main(["--space", SPACE]) == 0
    api = HfApi()
    api.upload_file(path_or_fileobj=b"old", path_in_repo="mammo/removed_module.py", repo_id=SPACE,
                    repo_type="space")
    commits = hub_server.commit_count(SPACE, repo_type="space")
    silent = f"http://127.0.0.1:{free_port()}"  # running, says the Hub, and its app does not answer
    hub_server.space_hosts[SPACE] = silent
    with pytest.raises(SystemExit, match=f"The running Space at {silent} did not answer /health"):
        deploy_space.main(["--space", SPACE, "--model-repo", f"{USER}/models"])
    assert hub_server.commit_count(SPACE, repo_type="space") == commits  # refused before any change
    assert deploy_space.main(["--space", SPACE, "--model-repo", f"{USER}/models", "--force"]) == 0
    del hub_server.space_hosts[SPACE]  # building: not asked, and it says so
    assert deploy_space.main(["--space", SPACE, "--model-repo", f"{USER}/models"]) == 0
    assert "The Space is BUILDING: no app runs there" in capsys.readouterr().err
    files = hub_server.files(SPACE, repo_type="space")
    assert "mammo/removed_module.py" not in files and "app.py" in files
    assert hub_server.commit_count(SPACE, repo_type="space") == commits + 2  # one commit a deploy
    settings = hub_server.space_settings(SPACE)
    assert not settings["private"] and settings["hardware"] == "cpu-basic"
    assert settings["secrets"] == {"HF_TOKEN": hub_server.token}  # the deploying token, without a scoped one


def test_deploy_without_a_token_says_so(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # no saved login either
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "token"))
    monkeypatch.setattr("huggingface_hub.constants.HF_STORED_TOKENS_PATH", str(tmp_path / "stored"))
    with pytest.raises(SystemExit, match="HF_TOKEN"):
        deploy_space.main(["--space", SPACE])
