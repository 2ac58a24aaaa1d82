"""Settings from environment variables; the only module that reads ``os.environ``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from .errors import SettingsError

__all__ = ["Settings", "settings", "cache_dir", "PACKAGE_WEIGHTS", "DISCLAIMER", "SPACE_STORAGE",
           "data_name", "data_names"]

PACKAGE_WEIGHTS = Path(__file__).parent / "weights"
# where Hugging Face mounts a Space's persistent storage, when its owner switches it on (its settings)
SPACE_STORAGE = Path("/data")

DISCLAIMER = (
    "Research and education only. mammo is not a medical device: it has not been cleared or "
    "approved by any regulator and must not be used for diagnosis, screening or treatment "
    "decisions. Its outputs can be wrong."
)


def _split(value: str | None) -> frozenset[str]:
    return frozenset(v.strip() for v in (value or "").split(",") if v.strip())


# the promotion gate's defaults: a candidate must reach the served version's AUC minus this
GATE_METRIC = "auc_malignant"
GATE_TOLERANCE = 0.01
# fewer malignant films than this in the held-out set: the gate cannot compare two models there (one
# film ranked first gives either an AUC of 1), so it promotes nothing
GATE_MIN_MALIGNANT = 5
# the review flag of a candidate that the gate's metric would promote may miss at most this share of
# the held-out malignant films more than the served version's flag does (at least one film): a model
# that ranks as well but flags far fewer cancers is worse where a user sees it
GATE_MORE_MISSED_SHARE = 0.05
# the keys of ``evaluate --json`` the gate can compare: numbers where higher is better
GATE_METRICS = ("auc_malignant", "auc_macro", "balanced_accuracy", "accuracy", "sensitivity", "specificity")


@dataclass(frozen=True)
class Settings:
    """Every setting mammo reads from the environment.

    Args:
        home: local store root (``MAMMO_HOME``), holding ``cases/`` and ``models/`` (and, with Hub
            stores, the outbox of what waits for the Hub). By default ``~/.mammo``; on a Space with
            persistent storage switched on, ``/data/mammo`` (:data:`SPACE_STORAGE`), which outlives a
            restart.
        base_data: labelled imagefolder used with the cases when retraining (``MAMMO_BASE_DATA``
            naming a local folder).
        data: root of the development data used by tests and scripts (``MAMMO_DATA``).
        dataset_repo: Hub dataset repo id for cases (``MAMMO_DATASET_REPO``).
        model_repo: Hub model repo id for versions (``MAMMO_MODEL_REPO``).
        hf_token: Hub token (``HF_TOKEN``); with a repo id it switches that store to the Hub.
        hf_endpoint: Hub endpoint (``HF_ENDPOINT``), for a private hub or tests.
        max_upload_mb: largest accepted upload (``MAMMO_MAX_UPLOAD_MB``).
        trainers: users allowed to retrain, promote, roll back (``MAMMO_TRAINERS``, comma list).
        submitters: users allowed to submit cases (``MAMMO_SUBMITTERS``; empty = everyone).
        on_spaces: running on Hugging Face Spaces (``SPACE_ID`` set).
        gate_metric: the holdout metric a retrained candidate must not lose on
            (``MAMMO_GATE_METRIC``, default ``auc_malignant``; one of ``GATE_METRICS``).
        gate_tolerance: how much lower it may be than the current version's (``MAMMO_GATE_TOLERANCE``).
        gate_min_malignant: the fewest malignant films the held-out set needs for the gate to
            promote a candidate over a current version (``MAMMO_GATE_MIN_MALIGNANT``, default 5).
        base_data_repo: Hub dataset repo holding that imagefolder (``MAMMO_BASE_DATA`` as
            ``hf://datasets/OWNER/NAME``, or ``OWNER/NAME`` when no such local folder exists),
            downloaded into the Hub cache at start.
        auto_retrain_every: start a gated retrain after every N new cases
            (``MAMMO_AUTO_RETRAIN_EVERY``; 0, the default, switches it off).
        follow_seconds: how often the app checks the registry for a version another process published
            (a retrain from a shell or a Job) and serves it, and fetches the case repo's label
            corrections and withdrawals made elsewhere (``MAMMO_FOLLOW_SECONDS``, default 30; 0
            switches it off: a restart does both).
        keep_files_hours: how long the app keeps the files visitors upload and the files it makes for
            them (heat maps, reports, downloads) in Gradio's upload folder before deleting them
            (``MAMMO_KEEP_FILES_HOURS``, default 24; all go when the app stops; cases and pending
            images are stored apart, for good, and never deleted so).
    """

    home: Path
    base_data: Path | None
    data: Path | None
    dataset_repo: str | None
    model_repo: str | None
    hf_token: str | None
    hf_endpoint: str | None
    max_upload_mb: int
    trainers: frozenset[str]
    submitters: frozenset[str]
    on_spaces: bool
    gate_metric: str = GATE_METRIC
    gate_tolerance: float = GATE_TOLERANCE
    gate_min_malignant: int = GATE_MIN_MALIGNANT
    base_data_repo: str | None = None
    auto_retrain_every: int = 0
    follow_seconds: float = 30.0
    keep_files_hours: float = 24.0

    @property
    def home_outlives_restarts(self) -> bool:
        """Whether what waits in ``home`` survives a restart: everywhere but on a Space, whose disk is
        new at each restart unless ``home`` is in its persistent storage."""
        return not self.on_spaces or self.home.resolve().is_relative_to(SPACE_STORAGE.resolve())

    @property
    def max_upload_bytes(self) -> int:
        """The upload cap in bytes (MAMMO_MAX_UPLOAD_MB, decimal megabytes), as every check uses it."""
        return self.max_upload_mb * 1_000_000

    @property
    def file_sweep(self) -> tuple[int, int]:
        """Gradio's ``delete_cache`` for MAMMO_KEEP_FILES_HOURS: (how often to look, the age past which a
        file goes), in seconds; looked for hourly, or four times an age under four hours, so a file
        stays at most an hour (a quarter of its age) past it."""
        age = max(1, round(self.keep_files_hours * 3600))
        return max(1, min(age // 4, 3600)), age

    @property
    def use_hub_cases(self) -> bool:
        return bool(self.dataset_repo and self.hf_token)

    @property
    def use_hub_models(self) -> bool:
        return bool(self.model_repo and self.hf_token)


def _number(env: Mapping[str, str], name: str, kind: type, default: float, what: str,
            valid: Callable[[float], bool]) -> float:
    """A numeric setting, or a SettingsError that names it and says what it must be."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {what}; it is {raw!r}.") from None
    if not valid(value):
        raise SettingsError(f"{name} must be {what}; it is {raw!r}.")
    return value


def _gate_metric(value: str | None) -> str:
    """MAMMO_GATE_METRIC, checked at start (a typo would otherwise reject every retrain after it ran)."""
    metric = (value or "").strip() or GATE_METRIC
    if metric not in GATE_METRICS:
        raise SettingsError(f"MAMMO_GATE_METRIC must be one of {', '.join(GATE_METRICS)} (higher is "
                            f"better); it is {value!r}.")
    return metric


_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
HUB_DATASET_PREFIX = "hf://datasets/"


def data_name(source: object) -> str:
    """A data source as people read it (a model's ``data.sources`` keeps its path): a Hub dataset as
    recorded (``hf://datasets/OWNER/NAME@<commit>``), its folder in the Hub cache as ``OWNER/NAME``,
    any other folder by its name, not this machine's path."""
    if str(source).startswith(HUB_DATASET_PREFIX):
        return str(source)
    path = PurePath(str(source))
    cached = [part for part in path.parts if part.startswith("datasets--")]
    return cached[0].removeprefix("datasets--").replace("--", "/") if cached else path.name


def data_names(sources: Sequence[object]) -> str:
    """:func:`data_name` of each source (a split's description, the served estimate)."""
    return ", ".join(data_name(source) for source in sources)


def _base_data(value: str | None) -> tuple[Path | None, str | None]:
    """MAMMO_BASE_DATA as (local folder, Hub dataset repo id): one of them, or neither."""
    value = (value or "").strip()
    if not value:
        return None, None
    if value.startswith(HUB_DATASET_PREFIX):
        repo = value[len(HUB_DATASET_PREFIX):].strip("/")
        if not _REPO_ID.fullmatch(repo):
            raise SettingsError(f"MAMMO_BASE_DATA must name a dataset repo as hf://datasets/OWNER/NAME; "
                                f"it is {value!r}.")
        return None, repo
    folder = Path(value).expanduser()
    if not folder.exists() and _REPO_ID.fullmatch(value):
        return None, value
    return folder, None


def cache_dir() -> Path:
    """Where mammo keeps what it can rebuild, such as ONNX exports (``MAMMO_CACHE``; by default
    ``$XDG_CACHE_HOME/mammo``, else ``~/.cache/mammo``)."""
    if os.environ.get("MAMMO_CACHE"):
        return Path(os.environ["MAMMO_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "mammo"


def _home(env: Mapping[str, str]) -> Path:
    """MAMMO_HOME; else, on a Space with persistent storage, a folder in it; else ``~/.mammo``."""
    if env.get("MAMMO_HOME"):
        return Path(env["MAMMO_HOME"]).expanduser()
    if env.get("SPACE_ID") and SPACE_STORAGE.is_dir() and os.access(SPACE_STORAGE, os.W_OK):
        return SPACE_STORAGE / "mammo"
    return Path.home() / ".mammo"


def settings() -> Settings:
    """Read the settings now (not cached: tests and the app may change the environment)."""
    env = os.environ
    base, base_repo = _base_data(env.get("MAMMO_BASE_DATA"))
    data = env.get("MAMMO_DATA")
    return Settings(
        home=_home(env),
        base_data=base,
        base_data_repo=base_repo,
        data=Path(data).expanduser() if data else None,
        dataset_repo=env.get("MAMMO_DATASET_REPO") or None,
        model_repo=env.get("MAMMO_MODEL_REPO") or None,
        hf_token=env.get("HF_TOKEN") or None,
        hf_endpoint=env.get("HF_ENDPOINT") or None,
        max_upload_mb=_number(env, "MAMMO_MAX_UPLOAD_MB", int, 50, "a whole number of megabytes, at least 1",
                              lambda v: v >= 1),
        trainers=_split(env.get("MAMMO_TRAINERS")),
        submitters=_split(env.get("MAMMO_SUBMITTERS")),
        on_spaces=bool(env.get("SPACE_ID")),
        gate_metric=_gate_metric(env.get("MAMMO_GATE_METRIC")),
        gate_tolerance=_number(env, "MAMMO_GATE_TOLERANCE", float, GATE_TOLERANCE, "a number between 0 and 1",
                               lambda v: 0 <= v <= 1),
        gate_min_malignant=_number(env, "MAMMO_GATE_MIN_MALIGNANT", int, GATE_MIN_MALIGNANT,
                                   "a whole number of malignant films, at least 1", lambda v: v >= 1),
        auto_retrain_every=_number(env, "MAMMO_AUTO_RETRAIN_EVERY", int, 0,
                                   "a whole number of new cases (0 switches it off)", lambda v: v >= 0),
        follow_seconds=_number(env, "MAMMO_FOLLOW_SECONDS", float, 30.0,
                               "a number of seconds (0 switches it off)", lambda v: v >= 0),
        keep_files_hours=_number(env, "MAMMO_KEEP_FILES_HOURS", float, 24.0, "a number of hours above 0",
                                 lambda v: 0 < v < float("inf")),
    )
