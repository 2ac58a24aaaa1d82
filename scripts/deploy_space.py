"""Deploy this repository as a Gradio Space on the Hugging Face Hub (create it, or update it).

    HF_TOKEN=hf_... python scripts/deploy_space.py --space OWNER/NAME [--private] [--hardware cpu-basic]
        [--dataset-repo OWNER/CASES] [--model-repo OWNER/MODELS] [--base-data OWNER/MIAS]
        [--trainers alice,bob] [--submitters alice,carol] [--space-url URL] [--force]

An update restarts the Space on a new disk, so first it asks the running Space's ``/health``
whether cases submitted while the Hub was down still wait there to be delivered, and refuses while
any do (``--force`` deploys anyway; a Space that does not answer is not checked).

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

__all__ = ["SPACE_PATHS", "space_files", "space_settings", "queued_cases", "check_no_queued_cases", "deploy",
           "main"]

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


def queued_cases(space_url: str, token: str | None = None, timeout_s: float = 15.0) -> int:
    """How many case shards the app at ``space_url`` holds that are not yet on the Hub (its
    ``/health``; HTTP 503 when degraded still carries the report); OSError when it does not answer.
    ``token`` opens a private Space."""
    request = urllib.request.Request(f"{space_url.rstrip('/')}/health",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            report = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code != 503:
            raise
        report = json.load(error)
    return int(report["cases"].get("queued_shards") or 0)


def check_no_queued_cases(space_url: str, token: str | None = None) -> None:
    """Refuse (SystemExit) while the running app at ``space_url`` holds cases not yet on the Hub: an
    update restarts it on a new disk, which would lose them. An app that does not answer (asleep,
    building, stopped) is not checked: it says so."""
    try:
        queued = queued_cases(space_url, token)
    except (OSError, ValueError, KeyError) as error:
        print(f"The Space at {space_url} did not answer /health ({error}): not checked for cases "
              "waiting to reach the Hub.", file=sys.stderr)
        return
    if queued:
        raise SystemExit(
            f"The running Space at {space_url} holds {queued} submitted case(s) not yet delivered to the "
            f"Hub (its /health says queued_shards: {queued}). Deploying restarts it on a new disk and "
            "they would be lost. Wait until /health says 0 (the Space delivers them as soon as the Hub "
            "answers), or pass --force to deploy anyway.")


def _running_space_url(api: HfApi, space: str) -> str | None:
    """The URL the Space serves its app on (``https://OWNER-NAME.hf.space``); None for a new Space."""
    try:
        return api.space_info(space).host
    except RepositoryNotFoundError:
        return None


def deploy(args: argparse.Namespace, api: HfApi, root: Path = ROOT) -> str:
    """Create or update the Space; the URL of its page."""
    files = space_files(root)
    if not args.force and args.space_url:
        check_no_queued_cases(args.space_url)  # a URL typed in: the token is not sent there
    elif not args.force and (space_url := _running_space_url(api, args.space)):
        check_no_queued_cases(space_url, api.token)  # the Hub's own URL for the Space (may be private)
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
