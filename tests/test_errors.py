"""One error type for users: every error mammo raises for a person derives from MammoError."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammo import config
from mammo.access import AccessDenied
from mammo.bulk import BulkError
from mammo.config import settings
from mammo.errors import BadRequest, MammoError, SettingsError
from mammo.imaging import ImageError, read_image
from mammo.model import ModelError
from mammo.retraining import RetrainBusy, RetrainError
from mammo.store import RegistryError, StoreError
from mammo.store._hub import HubError, HubUnavailable


@pytest.mark.parametrize("error", [AccessDenied, BulkError, ImageError, ModelError, RetrainBusy, RetrainError,
                                   RegistryError, StoreError, HubError, HubUnavailable, BadRequest,
                                   SettingsError])
def test_every_user_facing_error_is_a_mammo_error(error: type) -> None:
    assert issubclass(error, MammoError)


def test_an_image_refusal_is_a_mammo_error_and_still_a_value_error() -> None:
    with pytest.raises(MammoError, match="not a recognised image") as caught:
        read_image(b"plain text, not an image")
    assert isinstance(caught.value, ValueError)  # callers that caught ValueError still do


def test_a_bare_numpy_error_is_not_one() -> None:
    import numpy as np

    with pytest.raises(ValueError) as caught:
        np.zeros(3).reshape(2, 2)
    assert not isinstance(caught.value, MammoError)  # the app logs it as unexpected, not as a message


@pytest.mark.parametrize(("name", "value", "message"), [
    ("MAMMO_MAX_UPLOAD_MB", "50MB", "MAMMO_MAX_UPLOAD_MB must be a whole number of megabytes, at least 1; "
                                    "it is '50MB'."),
    ("MAMMO_MAX_UPLOAD_MB", "0", "at least 1"),
    ("MAMMO_GATE_TOLERANCE", "one percent", "MAMMO_GATE_TOLERANCE must be a number between 0 and 1"),
    ("MAMMO_GATE_TOLERANCE", "-0.1", "between 0 and 1"),
    ("MAMMO_AUTO_RETRAIN_EVERY", "ten", "MAMMO_AUTO_RETRAIN_EVERY must be a whole number of new cases"),
    ("MAMMO_AUTO_RETRAIN_EVERY", "-1", "0 switches it off"),
    ("MAMMO_GATE_METRIC", "auc_malignnat", "MAMMO_GATE_METRIC must be one of auc_malignant, auc_macro"),
    ("MAMMO_GATE_METRIC", "ece_malignant", "higher is better.; it is 'ece_malignant'"),
    ("MAMMO_KEEP_FILES_HOURS", "1 day", "MAMMO_KEEP_FILES_HOURS must be a number of hours above 0"),
    ("MAMMO_KEEP_FILES_HOURS", "0", "above 0; it is '0'"),
    ("MAMMO_KEEP_FILES_HOURS", "inf", "above 0; it is 'inf'"),
])
def test_a_setting_typo_names_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                          message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        settings()


def test_settings_defaults_and_valid_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAMMO_MAX_UPLOAD_MB", raising=False)
    monkeypatch.setenv("MAMMO_GATE_TOLERANCE", " 0.02 ")
    monkeypatch.setenv("MAMMO_AUTO_RETRAIN_EVERY", "25")
    monkeypatch.setenv("MAMMO_GATE_METRIC", " auc_macro ")
    current = settings()
    assert current.gate_metric == "auc_macro"
    assert current.max_upload_mb == 50 and current.gate_tolerance == 0.02
    assert current.auto_retrain_every == 25
    assert current.keep_files_hours == 24 and current.file_sweep == (3600, 86400)  # looked at hourly


@pytest.mark.parametrize(("hours", "sweep"), [("0.5", (450, 1800)), ("0.0001", (1, 1)),
                                              ("48", (3600, 172800))])
def test_the_file_sweep_runs_at_least_hourly_and_removes_files_past_the_age(
        monkeypatch: pytest.MonkeyPatch, hours: str, sweep: tuple[int, int]) -> None:
    monkeypatch.setenv("MAMMO_KEEP_FILES_HOURS", hours)
    assert settings().file_sweep == sweep


def test_on_a_space_with_persistent_storage_home_is_kept_in_it(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    """A Space's disk is new at each restart; its persistent storage (when switched on) is not, so a
    case queued for the Hub waits there safely and its receipt need not warn."""
    storage = tmp_path / "data"
    monkeypatch.setattr(config, "SPACE_STORAGE", storage)
    monkeypatch.delenv("MAMMO_HOME", raising=False)
    monkeypatch.setenv("SPACE_ID", "owner/mammo")
    plain = settings()  # no persistent storage
    assert plain.home == Path.home() / ".mammo" and not plain.home_outlives_restarts
    storage.mkdir()
    kept = settings()
    assert kept.home == storage / "mammo" and kept.home_outlives_restarts
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "elsewhere"))  # the owner's choice wins
    assert settings().home == tmp_path / "elsewhere" and not settings().home_outlives_restarts
    monkeypatch.delenv("SPACE_ID")
    assert settings().home_outlives_restarts  # off a Space a disk is kept
