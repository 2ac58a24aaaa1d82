"""Base data for retraining from a Hub dataset repo (``MAMMO_BASE_DATA=hf://datasets/OWNER/NAME``).

``scripts/fetch_mias.py --push-to`` uploads a converted folder as a private dataset repo; the
service downloads it with ``snapshot_download`` at start, against the Hub-protocol test server of
``tests/hub_server.py`` (legacy LFS; Xet transfer is not covered).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
from hub_server import USER
from huggingface_hub import HfApi

from mammo.config import settings
from mammo.data import SplitSpec, folder_examples
from mammo.pipeline import base_splits
from mammo.retraining import RetrainError, RetrainOptions
from mammo.service import MammoService
from mammo.store import open_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import fetch_mias  # noqa: E402

REPO = f"{USER}/mias-private"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def pushed(hub_server, small_mias: Path) -> str:
    url = fetch_mias.push_to_hub(small_mias, REPO)
    assert url.endswith(f"datasets/{REPO}")
    return REPO


def _service(home: Path, tiny_model_dir: Path, base: str, monkeypatch) -> MammoService:
    monkeypatch.setenv("MAMMO_BASE_DATA", base)
    config = dataclasses.replace(settings(), home=home, trainers=frozenset(), submitters=frozenset(),
                                 on_spaces=False, dataset_repo=None, model_repo=None)
    open_registry(config, seed=tiny_model_dir)
    return MammoService(config)


def test_push_makes_a_private_repo_with_the_folder_and_a_licence_card(pushed: str, hub_server, small_mias):
    info = HfApi().repo_info(pushed, repo_type="dataset")
    assert info.private
    local = _files(small_mias)
    assert set(hub_server.files(pushed)) == {*local, "README.md", ".gitattributes"}
    assert all(hub_server.read(pushed, name) == content for name, content in local.items())
    card = hub_server.read(pushed, "README.md").decode()
    assert "Keep this repository private" in card and "licence" in card


def test_push_refuses_an_existing_public_repo(hub_server, small_mias: Path, tmp_path: Path, capsys):
    HfApi().create_repo(f"{USER}/public-mias", repo_type="dataset", private=False)
    with pytest.raises(ValueError, match="public"):
        fetch_mias.push_to_hub(small_mias, f"{USER}/public-mias")
    assert hub_server.files(f"{USER}/public-mias") == [".gitattributes"]  # nothing uploaded


@pytest.mark.parametrize("form", ["hf://datasets/{repo}", "{repo}"])
def test_service_reads_the_same_base_data_and_holdout_from_the_hub(
    pushed: str, form: str, small_mias: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    service = _service(tmp_path / "home", tiny_model_dir, form.format(repo=pushed), monkeypatch)
    try:
        fetched = service.base_data()
        assert fetched != small_mias and _files(fetched).keys() >= _files(small_mias).keys()
        counts = {label: n["base"] for label, n in service.data_summary().items()}
        assert counts == {label: len(list((small_mias / label).glob("*.png"))) for label in counts}
        names = lambda examples: sorted(e.name for e in examples)  # noqa: E731
        assert names(folder_examples(fetched)) == names(folder_examples(small_mias))
        spec = SplitSpec()
        hub_split, local_split = base_splits([fetched], None, spec), base_splits([small_mias], None, spec)
        for part in ("train", "val", "holdout"):  # the gate's fixed holdout is the same patients
            assert names(hub_split[part]) == names(local_split[part]), part
        assert f"the Hub dataset repo {pushed}, fetched to {fetched}" in service.describe()
    finally:
        service.close()


def test_a_retrain_on_a_hub_base_dataset_names_the_repo_and_commit_not_the_cache_folder(
    pushed: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    service = _service(tmp_path / "home", tiny_model_dir, pushed, monkeypatch)
    try:
        fetched = service.base_data()
        summary = service.retrain(RetrainOptions(epochs=1, image_size=48, from_current=True))
        commit = HfApi().dataset_info(pushed).sha
        name = f"hf://datasets/{pushed}@{commit}"
        assert summary["split"].startswith(f"15% of the patients of {name} (stratified")
        assert name in summary["reason"] and str(fetched) not in json.dumps(summary)
        # the candidate, published or kept as rejected, records the same name
        kept = (service.registry.load(summary["version"]) if summary["promoted"] else
                service.registry.rejected_dir / summary["rejected_id"])
        assert json.loads((kept / "config.json").read_text())["mammo"]["data"]["sources"] == [name]
    finally:
        service.close()


def test_a_missing_repo_leaves_the_app_serving_and_says_why_retrain_is_off(
    hub_server, tiny_model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    service = _service(tmp_path / "home", tiny_model_dir, f"hf://datasets/{USER}/no-such-data", monkeypatch)
    try:
        assert service.data_summary()  # the app still starts and counts what it has
        why = f"{USER}/no-such-data could not be fetched: Repository not found"
        with pytest.raises(RetrainError, match=why):
            service.base_data()
        assert "missing" in service.describe()
    finally:
        service.close()


@pytest.mark.parametrize(("value", "folder", "repo"), [
    ("hf://datasets/alice/mias", None, "alice/mias"),
    ("hf://datasets/alice/mias/", None, "alice/mias"),
    ("alice/mias", None, "alice/mias"),  # no such local folder here: a repo id
    ("{tmp}", "{tmp}", None),  # an existing folder stays a folder
    ("{tmp}/missing-folder", "{tmp}/missing-folder", None),  # an absolute path is never a repo id
    ("", None, None),
])
def test_base_data_setting_names_a_local_folder_or_a_hub_repo(value, folder, repo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAMMO_BASE_DATA", value.format(tmp=tmp_path))
    read = settings()
    assert read.base_data == (Path(folder.format(tmp=tmp_path)) if folder else None)
    assert read.base_data_repo == repo


def test_a_malformed_hub_base_data_setting_is_refused_by_name(monkeypatch):
    from mammo.errors import SettingsError

    monkeypatch.setenv("MAMMO_BASE_DATA", "hf://datasets/just-a-name")
    with pytest.raises(SettingsError, match="MAMMO_BASE_DATA must name a dataset repo"):
        settings()
