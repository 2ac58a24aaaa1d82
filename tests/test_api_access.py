"""API callers identified by their Hugging Face token, and /health, through the real app.

The app resolves the token a ``gradio_client.Client(..., oauth_token=...)`` caller passes with
``whoami`` on the Hub-protocol test server (tests/hub_server.py: one valid token, user
``mammo-tester``); browser sign-in (OAuth) is not exercised here.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pytest
from app_server import AppProcess
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from helpers import NEXT, SERVED
from hub_server import USER


def test_api_callers_with_a_trainers_token_may_retrain_submit_and_roll_back(
    hub_server, small_mias: Path, tmp_path: Path
) -> None:
    # HF_ENDPOINT (the test hub) reaches the app through its environment; the stores stay local
    env = {"MAMMO_BASE_DATA": str(small_mias), "MAMMO_TRAINERS": f"alice,{USER}", "MAMMO_SUBMITTERS": USER}
    with AppProcess(tmp_path / "home", env=env) as app:
        image = handle_file(str(next((small_mias / "normal").glob("*.png"))))
        anonymous = app.client()
        stranger = app.client(oauth_token="hf_not_a_valid_token_0123456789")
        trainer = app.client(oauth_token=hub_server.token)
        for refused in (anonymous, stranger):
            with pytest.raises(AppError, match="limited to the trainers of this app; you are not signed in"):
                refused.predict("v1", api_name="/rollback")
            # the refusal says how to pass a token; an emptied image size (null) is "keep the model's"
            for image_size in (64, None):
                with pytest.raises(AppError, match="oauth_token"):
                    refused.predict(1, image_size, True, api_name="/retrain")
            with pytest.raises(AppError, match="limited to the submitters of this app"):
                refused.predict(image, "normal", api_name="/submit_case")
        # the trainer passes the access check: the options are the next check (no training needed)
        with pytest.raises(AppError, match=r"image size must be 0 \(the current model's\) or from 96 to 1024 "
                                           r"pixels \(the served recipe cuts 96 px patches"):  # v3's
            trainer.predict(1, 16, True, api_name="/retrain")
        assert trainer.predict(image, "normal", api_name="/submit_case")["status"] == "stored"
        # a version named with spaces around it (pasted) is the version
        assert trainer.predict(" v1 ", api_name="/rollback") == {"version": NEXT, "rollback_of": "v1"}
        with pytest.raises(AppError, match="already served"):
            trainer.predict(NEXT, api_name="/rollback")
        assert anonymous.predict(api_name="/models")[-1]["version"] == NEXT
        # the audit log names the trainer for what the token allowed, and nothing refused
        rows = list(csv.DictReader(Path(anonymous.predict(api_name="/audit")).open()))
        assert [(r["action"], r["user"]) for r in rows] == [("submission", USER), ("rollback", USER)]
        rollback = json.loads(rows[1]["details"])
        assert rollback == {"served_again": "v1", "published_as": NEXT, "replaced": SERVED}
        served = anonymous.predict(image, api_name="/predict")[2]["model_version"]
        assert served == NEXT
        # history across sessions: the caller's own predictions, by their token; none anonymously
        mine = trainer.predict(image, api_name="/predict")[2]
        history = trainer.predict(api_name="/history")
        assert [(h["user"], h["image_sha256"]) for h in history] == [(USER, mine["image_sha256"])]
        with pytest.raises(AppError, match="needs you to be signed in"):
            anonymous.predict(api_name="/history")
        # each token checked once with the Hub (then cached); no token in the app's log
        whoami = [path for _, path in hub_server.calls if path == "/api/whoami-v2"]
        assert len(whoami) == 2
        log = app.log()
        assert hub_server.token not in log and "hf_not_a_valid_token" not in log


def test_health_says_degraded_when_the_hub_is_down(hub_server, small_mias: Path, tmp_path: Path) -> None:
    env = {"MAMMO_MODEL_REPO": f"{USER}/models"}  # with HF_TOKEN: versions on the (test) Hub
    with AppProcess(tmp_path / "home", env=env) as app:
        assert httpx.get(app.url + "health", timeout=10).json()["hub"]["reachable"]
        hub_server.stop()
        answer = httpx.get(app.url + "health", timeout=30)
        report = answer.json()
        assert answer.status_code == 503 and report["status"] == "degraded"
        assert not report["hub"]["reachable"] and "unreachable" in report["hub"]["error"]
        assert not report["models"]["reachable"] and report["cases"]["reachable"]
        # a token the Hub cannot check now is said to be that, not taken for no token ("pass your token")
        caller = app.client(oauth_token=hub_server.token)
        with pytest.raises(AppError, match="token could not be checked: the Hub did not answer") as refused:
            caller.predict(api_name="/history")
        assert "pass your" not in str(refused.value)
        # ... but a prediction, which needs nobody's name, is made (filed in no one's history)
        film = handle_file(str(next((small_mias / "normal").glob("*.png"))))
        assert caller.predict(film, api_name="/predict")[2]["model_version"]
        assert report["model_version"] == SERVED  # still serving
