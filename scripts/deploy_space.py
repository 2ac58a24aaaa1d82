"""Deploy this repository as a Gradio Space on the Hugging Face Hub (create it, or update it).

    HF_TOKEN=hf_... python scripts/deploy_space.py --space OWNER/NAME [--private] [--hardware cpu-basic]
        [--dataset-repo OWNER/CASES] [--model-repo OWNER/MODELS] [--base-data OWNER/MIAS]
        [--trainers alice,bob] [--submitters alice,carol] [--space-url URL] [--force]

An update restarts the Space on a new disk, so first it asks a running Space's ``/health``
whether cases submitted while the Hub was down still wait there to be delivered, and refuses while
any do or while it does not answer (``--force`` deploys anyway). A Space that is not running
(asleep, paused, building) is not asked: no disk of its is left.

Uploads the files the Space runs (``app.py``, ``mammo/`` with its packaged weights, ``examples/``,
``requirements.txt``, ``README.md`` with its Space metadata, ``LICENSE``, ``.gitattributes``): the
files git tracks under those paths, nothing else (no tests, scripts, runs, local stores or data).
Files the Space holds that are no longer in that list are deleted in the same commit. Binary
files (weights, images, DICOM) go through LFS. Then it sets the Space's variables
(``MAMMO_DATASET_REPO``, ``MAMMO_MODEL_REPO``, ``MAMMO_BASE_DATA``, ``MAMMO_TRAINERS``,
``MAMMO_SUBMITTERS``) and, when the Space uses Hub repos, the secret ``HF_TOKEN`` (the value of
``MAMMO_SPACE_TOKEN`` if set, best a fine-grained token that can write only those repos; else the
deploying ``HF_TOKEN``), requests the hardware and prints the Space's URL. Honours ``HF_TOKEN``
and ``HF_ENDPOINT``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import RepositoryNotFoundError

__all__ = ["SPACE_PATHS", "RUNNING_STAGES", "space_files", "space_settings", "queued_cases",
           "check_no_queued_cases", "check_before_update", "deploy", "main"]

ROOT = Path(__file__).resolve().parents[1]
# what a Space runs: top-level files and folders, as git tracks them
SPACE_PATHS = ("app.py", "requirements.txt", "README.md", "LICENSE", ".gitattributes", "mammo/", "examples/")


def space_files(root: Path = ROOT) -> list[str]:
    """The tracked files of ``root`` the Space needs (POSIX paths relative to ``root``)."""
    try:
        tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"{root} is not a git checkout ({error}); deploy from a clone of the "
                         "repository.") from None
    files = [name for name in tracked.decode().split("\0") if name]
    chosen = [name for name in files if any(name == p or (p.endswith("/") and name.startswith(p))
                                            for p in SPACE_PATHS)]
    missing = [p for p in ("app.py", "requirements.txt", "README.md") if p not in chosen]
    if missing:
        raise SystemExit(f"{root} lacks {', '.join(missing)}: not a mammo checkout?")
    return sorted(chosen)


def space_settings(args: argparse.Namespace) -> tuple[dict[str, str], bool]:
    """The Space variables to set, and whether the Space needs a token (it uses Hub repos)."""
    variables = {
        "MAMMO_DATASET_REPO": args.dataset_repo,
        "MAMMO_MODEL_REPO": args.model_repo,
        "MAMMO_BASE_DATA": args.base_data,
        "MAMMO_TRAINERS": args.trainers,
        "MAMMO_SUBMITTERS": args.submitters,
    }
    needs_token = bool(args.dataset_repo or args.model_repo or args.base_data)
    return {key: value for key, value in variables.items() if value}, needs_token


# runtime stages in which an app is up and may hold cases on its disk (the others have no disk left)
RUNNING_STAGES = frozenset({"RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is not followed (it would carry the token elsewhere): it is an HTTP error."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def queued_cases(space_url: str, token: str | None = None, timeout_s: float = 15.0) -> int:
    """How many case shards the app at ``space_url`` holds that are not yet on the Hub, from its
    ``/health`` (HTTP 503, degraded, still carries the report). OSError when it does not answer,
    ValueError when the answer is not that report. ``token`` opens a private Space."""
    request = urllib.request.Request(f"{space_url.rstrip('/')}/health",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=timeout_s) as response:
            report = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code != 503:
            raise
        report = json.load(error)
    cases = report.get("cases") if isinstance(report, dict) else None
    queued = cases.get("queued_shards") if isinstance(cases, dict) else None
    if not isinstance(queued, int):
        raise ValueError("the answer is not mammo's health report (no cases.queued_shards)")
    return queued


def check_no_queued_cases(space_url: str, token: str | None = None) -> None:
    """Refuse (SystemExit) unless the running app at ``space_url`` says it holds no case that is not
    yet on the Hub: an update restarts it on a new disk, which would lose them."""
    try:
        queued = queued_cases(space_url, token)
    except (OSError, ValueError) as error:
        raise SystemExit(
            f"The running Space at {space_url} did not answer /health with its report ({error}), so "
            "whether it holds submitted cases not yet on the Hub is unknown; deploying restarts it on a "
            "new disk. Try again when it answers, or pass --force to deploy anyway.") from None
    if queued:
        raise SystemExit(
            f"The running Space at {space_url} holds {queued} submitted case(s) not yet delivered to the "
            f"Hub (its /health says queued_shards: {queued}). Deploying restarts it on a new disk and "
            "they would be lost. Wait until /health says 0 (the Space delivers them as soon as the Hub "
            "answers), or pass --force to deploy anyway.")


def check_before_update(api: HfApi, space: str, space_url: str | None = None) -> None:
    """Refuse (SystemExit) to update a running Space that holds cases not yet on the Hub (or does not
    say). A new Space, or one not running (asleep, paused, building, stopped: no disk left), is not
    asked (asking would wake it), and it says so."""
    try:
        stage = api.get_space_runtime(space).stage
    except RepositoryNotFoundError:
        return  # a new Space
    if stage not in RUNNING_STAGES:
        print(f"The Space is {stage}: no app runs there to hold cases, so it was not asked.", file=sys.stderr)
        return
    if space_url:  # typed in: the token is not sent there
        check_no_queued_cases(space_url)
        return
    host = api.space_info(space).host  # where the Hub serves it: the token may go, over HTTPS only
    if not host:
        raise SystemExit(f"The Hub gives no URL for the running Space {space}: pass --space-url, or "
                         "--force to deploy without asking it.")
    check_no_queued_cases(host, api.token if host.startswith("https://") else None)


def deploy(args: argparse.Namespace, api: HfApi, root: Path = ROOT) -> str:
    """Create or update the Space; the URL of its page."""
    files = space_files(root)
    if not args.force:
        check_before_update(api, args.space, args.space_url)
    url = api.create_repo(args.space, repo_type="space", space_sdk="gradio", private=args.private,
                          exist_ok=True)
    api.upload_folder(repo_id=args.space, repo_type="space", folder_path=root, allow_patterns=files,
                      delete_patterns=["*"], commit_message="Deploy mammo")
    variables, needs_token = space_settings(args)
    for key, value in variables.items():
        api.add_space_variable(args.space, key, value)
    if needs_token:
        token = os.environ.get("MAMMO_SPACE_TOKEN") or api.token or get_token()
        if not token:
            raise SystemExit("The Space uses Hub repos and needs a token: set HF_TOKEN "
                             "(or MAMMO_SPACE_TOKEN).")
        api.add_space_secret(args.space, "HF_TOKEN", token,
                             description="mammo's access to its dataset, model and base-data repos")
    if args.hardware:
        api.request_space_hardware(args.space, args.hardware)
    return str(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", required=True, help="OWNER/NAME of the Space")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--hardware", default="cpu-basic", help="Space hardware flavour ('' leaves it)")
    parser.add_argument("--dataset-repo", help="dataset repo for submitted cases (MAMMO_DATASET_REPO)")
    parser.add_argument("--model-repo", help="model repo for versions (MAMMO_MODEL_REPO)")
    parser.add_argument("--base-data", help="dataset repo of the base data for retraining (MAMMO_BASE_DATA)")
    parser.add_argument("--trainers", help="comma list of Hub users who may retrain (MAMMO_TRAINERS)")
    parser.add_argument("--submitters", help="comma list of Hub users who may submit (MAMMO_SUBMITTERS)")
    parser.add_argument("--space-url", help="where the running Space serves its app (default: from the Hub)")
    parser.add_argument("--force", action="store_true",
                        help="deploy even while the running Space holds cases not yet on the Hub (lost)")
    args = parser.parse_args(argv)
    token = get_token()  # HF_TOKEN (or a saved login); HfApi reads HF_ENDPOINT
    if not token:
        raise SystemExit("Set HF_TOKEN to a token that may create and write the Space.")
    api = HfApi(token=token)
    url = deploy(args, api)
    print(f"Space deployed: {url}")
    print("It builds and starts on the Hub in a few minutes; its logs are on the Space page.",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
