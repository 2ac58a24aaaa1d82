"""Deploy this repository as a Gradio Space on the Hugging Face Hub (create it, or update it).

    HF_TOKEN=hf_... python scripts/deploy_space.py --space OWNER/NAME [--private] [--hardware cpu-basic]
        [--dataset-repo OWNER/CASES] [--model-repo OWNER/MODELS] [--base-data OWNER/MIAS]
        [--trainers alice,bob] [--submitters alice,carol]

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
import os
import subprocess
import sys
from pathlib import Path

from huggingface_hub import HfApi, get_token

__all__ = ["SPACE_PATHS", "space_files", "space_settings", "deploy", "main"]

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


def deploy(args: argparse.Namespace, api: HfApi, root: Path = ROOT) -> str:
    """Create or update the Space; the URL of its page."""
    files = space_files(root)
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
