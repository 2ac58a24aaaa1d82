"""What the app does, without the UI: predict, submit cases, retrain with the gate, versions.

``MammoService`` holds the served ``Predictor`` and swaps it atomically after a promotion:
requests already running finish on the model they started with.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import config as mammo_config
from .access import can_submit, can_train
from .bulk import BulkError, zip_cases
from .choices import DEFAULT_METHOD, DEFAULT_OPACITY
from .data import Example, SplitSpec, case_examples, film_identities, films_key, folder_examples, label_order
from .errors import MammoError
from .explain import overlay
from .fingerprint import FilmIdentity, Fingerprints, KnownFilms
from .imaging import colour_doubt, dicom_view, encode_png, read_image
from .metrics import recorded_value
from .pipeline import base_splits, refuse_learnt_holdout, train_to_folder
from .predict import ImageSource, LoadedImage, Prediction, Predictor, load_image
from .preprocess import whole_film_doubt
from .recent import RecentImages
from .report import prediction_report
from .retraining import (
    AUTO_USER,
    PUBLISH_FAILED,
    RETRAIN_EVENTS,
    TRAINING_BEGINS,
    PublishedNotServed,
    RetrainBusy,
    RetrainError,
    RetrainOptions,
    published_meanwhile,
    recorded_holdout,
    retrain_summary,
    withdrawn_meanwhile,
)
from .store import (
    AuditLog,
    HubCaseStore,
    HubError,
    NewerVersion,
    PendingPool,
    PredictionLog,
    RegistryError,
    StoreError,
    base_data_folder,
    base_data_name,
    base_data_source,
    check_reachable,
    flag_kept,
    hub_api,
    is_newer,
    line_best,
    open_audit_log,
    open_case_store,
    open_prediction_log,
    open_registry,
    prediction_record,
    promotion_decision,
)
from .store._fs import file_lock, remove_unlocked
from .store.cases import label_conflict_text, label_doubt
from .store.gate import gives_every_film_one_score
from .store.registry import rollback_of, version_number
from .train import (
    FILM_STAGE,
    PATCH_STAGE,
    EpochLog,
    TrainConfig,
    evaluate_probabilities,
    model_probabilities,
    paired_comparison,
)
from .values import echoed
from .views import BASE_FILM_CASES, HEADER_FIELDS, header_fill, small_films_warning

__all__ = ["MammoService", "SUBMISSIONS_CHECKED_AFTER_S"]

Progress = Callable[[float, str], None]
# a version report's records of the best of the served line, which a rollback's copy carries
_LINE_RECORDS = ("gate_best", "gate_best_specificity", "gate_best_sensitivity")
_ROLLBACK_WAITS = "it may publish a new version: serve an earlier one again when it has finished."
log = logging.getLogger(__name__)
# audit events fetched from the dataset repo onto a new disk: the newest (the Models tab shows 500)
FETCHED_AUDIT_EVENTS = 5000
# the newest cases whose submission events the app looks for after it starts (a kill can leave the few
# cases being stored then without one; more, for an app killed again before it checked)
CASES_CHECKED_AT_START = 100
SUBMISSIONS_CHECKED_AFTER_S = 10.0  # another process's submit in flight at the start has its event by then
# a case queued while the Hub is down is on the server's disk alone, and a Space's disk is new after
# every restart: its receipt says so (README: "A Space's disk is new after every restart")
QUEUED_ON_A_SPACE_TEMPLATE = ("Until the Hub answers, {} is only on this Space's disk, which a restart of "
                              "the Space replaces: {}.")
UPLOAD_QUEUED_ON_A_SPACE = QUEUED_ON_A_SPACE_TEMPLATE.format(
    "this upload", "keep your own copy of the image(s) until the dataset shows them")
CORRECTION_QUEUED_ON_A_SPACE = QUEUED_ON_A_SPACE_TEMPLATE.format(
    "this correction", "check the case's label after a restart")
WITHDRAWAL_QUEUED_ON_A_SPACE = QUEUED_ON_A_SPACE_TEMPLATE.format(
    "this withdrawal", "check the case is gone after a restart")
# a case that is a base film is left out of training (pipeline), so a label given to correct the base
# data's changes nothing the model learns: its receipt says so
HELD_OUT_FILM = ("this image is one of the base data's held-out films, on which every retrain is judged: a "
                 "retrain leaves this case out of training (a held-out film is never trained on)")
BASE_LABEL_KEPT = ("a label given here to correct the base data's is stored with the case, but training "
                   "changes only when the base data itself is corrected")
# per model, in a retrain's audit event (the interval's units with it: v1-v3's drew films)
_AUDITED_METRICS = ("n", "auc_malignant", "auc_malignant_ci95", "auc_ci_resampled")


class BaseFilm(NamedTuple):
    """A film of the base data: its part of the served version's split ("train", "val" or "holdout")
    and its label there."""

    part: str
    label: str


def base_label_said(film: BaseFilm, given: str | None) -> str:
    """The base data's label for ``film``, and whether it differs from the one ``given`` here."""
    if given is None or given == film.label:
        return f"labelled {film.label} in the base data"
    return f"labelled {film.label} in the base data, not {given} as given here"


def _files_stamp(folder: Path) -> tuple:
    """The name, size and modification time of each file in ``folder``: changes when any file does."""
    return tuple(sorted((p.name, (stat := p.stat()).st_size, stat.st_mtime_ns)
                        for p in Path(folder).iterdir() if p.is_file()))


@functools.lru_cache(maxsize=4)
def _base_counts(folder: Path | None) -> dict[str, int]:
    """Images per label of the base folder (read once: it does not change while the app runs)."""
    if folder is None or not folder.is_dir():
        return {}
    return dict(Counter(example.label for example in folder_examples(folder)))


def not_audited(error: OSError) -> str:
    """A receipt's warning when its change is stored but the audit log could not record it."""
    return (f"It is stored, but the audit log could not record it ({error.strerror or error}): tell the "
            "maintainer of this app.")


def _recorded_recipe(model: Predictor) -> TrainConfig:
    """The recipe a served model's config records it was trained with."""
    return TrainConfig.from_dict((model.config.get("mammo") or {}).get("training") or {})


def _audited(metrics: Mapping[str, Any], key: str) -> Any:
    """A model's figure as a retrain's audit event keeps it: no interval for a model that gave every
    film one score (its AUC of 0.50 ranks nothing, so "0.500–0.500" would mislead)."""
    return None if key == "auc_malignant_ci95" and gives_every_film_one_score(metrics) else metrics.get(key)


def _with_the_header(image: ImageSource, metadata: Mapping[str, Any] | None):
    """A DICOM's side and view, as its header states them, in the case's metadata where they were left
    empty (the page's form fills them in as the file is put in; an API caller's DICOM was stored with
    none, or with the other side, unremarked: an API probe), and what it filled in or where it differs
    (:func:`views.header_fill`)."""
    metadata = dict(metadata or {})
    header = dicom_view(image) if isinstance(image, str | os.PathLike | bytes) else {}
    given = {name: str(metadata[name]).strip().upper() if metadata.get(name) else None  # as stored
             for name in HEADER_FIELDS}
    fill = header_fill(header, {}, given)
    return {**metadata, **{name: value for name, value in fill.set_to.items() if value}}, fill


def _stored_film(digest: str, image: LoadedImage | None) -> FilmIdentity:
    """A stored case's film: the store's hash of its pixels, and the fingerprints of its image as read
    for its receipt (none when it could not be read again: then known by its pixels only)."""
    return FilmIdentity(digest, image and image.fingerprint, image and image.mirrored)


class MammoService:
    """The store, registry and served model of one app instance."""

    def __init__(self, settings: mammo_config.Settings | None = None, *,
                 check_submissions_after: float | None = None, fetch_logs: bool = True) -> None:
        """Args:
            settings: the environment's settings (read from it when None).
            fetch_logs: with the Hub backend, fetch the audit and prediction logs onto a disk that
                lacks them, in the background (off for a command that stores and ends, as
                ``cases import``: it closed the store under a fetch still writing).
            check_submissions_after: seconds after the start at which the newest cases' submission
                events are checked (:meth:`AuditLog.record_unrecorded_submissions`): the app's own
                process, once, after any other process's submit in flight at its start has written its
                event; None (a command, a test) checks nothing.
        """
        started = datetime.now(timezone.utc)
        self.settings = settings or mammo_config.settings()
        self.registry = open_registry(self.settings)
        self.newest_problem: str | None = None  # why a newer published version cannot be served
        self._unservable: tuple | None = None  # that version and its files' sizes and times, as they failed
        self._predictor = self._newest_loadable()
        self.cases = open_case_store(self._predictor.labels, self.settings)
        self.cases.copy_of_withdrawn = self._withdrawn_copy_of
        self.audit: AuditLog = open_audit_log(self.settings, self.cases)
        self.predictions: PredictionLog = open_prediction_log(self.settings, self.cases)
        self.pending = PendingPool(self.settings.home / "pending")  # the "label next" pool
        self._retrain_lock = threading.Lock()
        self.retrain_started: str | None = None
        # the running retrain's latest step (fraction done, what it does), for pages that did not start it
        self.retrain_progress: tuple[float, str] | None = None
        self._last_retrain: dict | None = None
        self._last_retrain_read = False  # the audit log is searched once (again after a fetch); kept after
        self._last_summary: tuple[dict | None, dict | None] = (None, None)  # an ending event, its summary
        self._auto_failed_at = 0  # cases submitted (withdrawn ones included) when an automatic retrain failed
        self._recent = RecentImages()
        self._closing = threading.Event()
        self._following = False
        self._started = time.monotonic()
        self._fetched_base: Path | None = None
        self._base_films_lock = threading.Lock()
        self._base_films_of: tuple[tuple[Path, SplitSpec] | None, KnownFilms[BaseFilm]] = (None, KnownFilms())
        self._base_problem: str | None = None
        # withdrawn case id -> its image's fingerprint (a withdrawal is final: each read once per
        # process, at the withdrawal here or at the first need)
        self._withdrawn_prints: dict[str, str] = {}
        self._withdrawn_unread: set[str] = set()  # withdrawn cases whose image could not be read (logged)
        self._withdrawn_lock = threading.Lock()
        # the films of the cases this process stored (case id tags), to say when one comes again as a
        # copy at another size or encoding, or mirrored (stored unremarked, even under another label)
        self._stored_here: KnownFilms[str] = KnownFilms()
        self._stored_here_lock = threading.Lock()
        self._base_folder()  # a Hub repo is downloaded at start
        self._sweep_work()
        # a new disk (a restarted Space) lacks them
        self.fetching_logs = fetch_logs and isinstance(self.cases, HubCaseStore)
        self.start_checks = threading.Thread(target=self._check_at_start, name="start-checks", daemon=True,
                                             args=(started, check_submissions_after))
        self.start_checks.start()

    def _check_at_start(self, started: datetime, check_submissions_after: float | None) -> None:
        """In the background at start: the Hub's logs fetched onto a new disk; then,
        ``check_submissions_after`` seconds on, the newest cases' submissions that no event records are
        recorded (a kill between storing a case and recording it; logged). Not when the audit events
        could not be fetched (every case would look unrecorded), nor once the service is closing."""
        audit_complete = self._fetch_logs(self.cases) if self.fetching_logs else True
        if check_submissions_after is None or self._closing.wait(check_submissions_after):
            return
        if not audit_complete:
            log.warning("the newest cases' submission events were not checked: the audit events on the Hub "
                        "were not fetched")
            return
        try:
            newest = self.cases.recent(CASES_CHECKED_AT_START)
            late = self.audit.record_unrecorded_submissions(newest, started)
        except (MammoError, OSError) as error:
            log.warning("the newest cases' submission events were not checked: %s", error)
            return
        if late:
            log.warning("recorded the submission of %d case(s) that no audit event recorded: %s",
                        len(late), ", ".join(late))

    def _base_folder(self, refresh: bool = False) -> Path | None:
        """The base data's local folder; a Hub repo is fetched the first time (and again with
        ``refresh``, keeping the copy it has when the Hub cannot be reached)."""
        if not self.settings.base_data_repo:
            return self.settings.base_data
        if self._fetched_base is None or refresh:
            try:
                self._fetched_base, self._base_problem = base_data_folder(self.settings), None
            except HubError as error:
                self._base_problem = str(error)
        return self._fetched_base

    def _fetch_logs(self, cases: HubCaseStore) -> bool:
        """Copy the audit events (the newest FETCHED_AUDIT_EVENTS) and prediction-log shards that the
        dataset repo holds and this disk lacks (a Space's disk is new at each restart), so that the
        Models tab's audit log, the Retrain tab's last retrain and the Analytics tab show them. Each
        shard is noted as mirrored as it is written (never sent back). Whether the audit events came."""
        try:
            audit = self._fetch(cases, "audit events", "audit", self.audit.folder, ".json",
                                FETCHED_AUDIT_EVENTS)
            if audit:
                self._last_retrain_read = False  # searched again, with the fetched events
            self._fetch(cases, "prediction-log shards", "logs", self.predictions.folder, ".jsonl",
                        fetched=lambda shard: self.predictions.adopt([shard]))
        finally:
            self.fetching_logs = False
        return audit is not None

    @staticmethod
    def _fetch(cases: HubCaseStore, what: str, folder: str, dest: Path, suffix: str,
               newest: int | None = None, fetched: Callable[[Path], None] | None = None) -> int | None:
        """:meth:`HubCaseStore.fetch_missing`, logged: how many came; None (and a warning) when the Hub
        cannot give them."""
        try:
            count = cases.fetch_missing(folder, dest, suffix, newest, fetched)
        except (MammoError, OSError) as error:
            log.warning("%s on the Hub not fetched (the next start tries again): %s", what, error)
            return None
        log.info("fetched %d %s from the Hub", count, what)
        return count

    def _sweep_work(self) -> None:
        """Remove candidate folders of retrains killed mid-way (a running one holds its lock)."""
        remove_unlocked(self._work_dir().glob("retrain-*"))

    @property
    def predictor(self) -> Predictor:
        """The served model (replaced whole after a promotion or rollback)."""
        return self._predictor

    @property
    def labels(self) -> list[str]:
        return self._predictor.labels

    def _newest_loadable(self) -> Predictor:
        """At start: the newest version; when it cannot be loaded, the newest one that can (the app
        serves rather than not starting; ``newest_problem`` and the log say why). None that loads: the
        newest's error."""
        try:
            return Predictor(self.registry.load())
        except Exception as error:  # whatever a damaged version raises
            newest = self.registry.latest()
            if newest is None:
                raise
            self.newest_problem = f"{newest} cannot be served ({error})"
            for row in reversed(self.registry.versions()[:-1]):
                try:
                    predictor = Predictor(self.registry.load(row["version"]))
                except Exception:
                    continue
                log.error("%s; %s is served instead", self.newest_problem, predictor.version)
                return predictor
            raise

    def follow_registry(self) -> str | None:
        """Serve the registry's newest version when another process published it (a retrain from a
        shell or a Job, another app on the same store), as a restart would; the version now served, or
        None when nothing changed. The check and the load run outside the retrain lock (a Hub call, a
        download, an export); the swap is skipped while this app retrains or rolls back (that sees the
        newest version itself)."""
        if self._retrain_lock.locked():  # a retrain or rollback ends serving the newest: no load meanwhile
            return None
        newest = self._newest_unserved()
        if newest is None or not self._retrain_lock.acquire(blocking=False):
            return None
        try:
            return self._serve(newest)
        finally:
            self._retrain_lock.release()

    def follow_registry_every(self, seconds: float) -> None:
        """Every ``seconds``, in a daemon thread until :meth:`close` (once): :meth:`follow_registry`,
        and the case repo's amendments from other servers (a withdrawal made elsewhere is then
        honoured here within that time; a Hub that does not answer is logged once, till it does)."""
        if self._following:
            return
        self._following = True
        hub_down = False

        def poll() -> None:
            nonlocal hub_down
            while not self._closing.wait(seconds):
                try:
                    self.follow_registry()
                except Exception:  # never let one bad check end the polling
                    log.exception("checking the model registry for a newer version failed")
                try:
                    self.cases.fetch_amendments()
                    hub_down = False
                except HubError as error:
                    if not hub_down:
                        log.warning("the case repo was not checked for other servers' cases, label "
                                    "corrections and withdrawals (tried again every %g s): %s", seconds,
                                    error)
                    hub_down = True
                except Exception:
                    log.exception("checking the case repo for other servers' cases, label corrections and "
                                  "withdrawals failed")

        threading.Thread(target=poll, name="follow-registry", daemon=True).start()

    def _newest_unserved(self) -> Predictor | None:
        """The registry's newest version, loaded, when it is newer than the served one; else None. Why
        a newer version cannot be served is kept in ``newest_problem`` (logged once) and the served one
        stays; the next check tries again, unless its files are those that failed (not rebuilt)."""
        served, latest, files = self._predictor.version, None, None
        try:
            latest = self.registry.latest()
            if not is_newer(latest, served):
                predictor = None
            else:
                folder = self.registry.load(latest)
                files = (latest, _files_stamp(folder))
                if files == self._unservable:  # unchanged since they failed: the problem stands
                    return None
                predictor = Predictor(folder)
        except Exception as error:  # whatever a damaged version raises: this app keeps serving
            problem = f"{latest or 'the model registry'} cannot be served ({error})"
            if problem != self.newest_problem:
                log.error("%s; %s is still served", problem, served)
            self.newest_problem = problem
            # what a damaged file raises happens again; a failed read or download, or memory, may not
            self._unservable = None if isinstance(error, (OSError, MemoryError)) else files
            return None
        self.newest_problem = self._unservable = None
        return predictor

    def _serve(self, newest: Predictor) -> str | None:
        """Swap in ``newest`` (retrain lock held) unless the served version is as new by now."""
        served = self._predictor.version
        if not is_newer(newest.version, served):
            return None
        self._predictor = newest
        log.info("now serving %s, published by another process (%s was served)", newest.version, served)
        self.audit.record("newer version served", None, version=newest.version, replaced=served)
        return newest.version

    def _serve_newest(self) -> bool:
        """With the retrain lock held: serve the newest version; False when a newer one than the served
        cannot be (``newest_problem`` says why)."""
        newest = self._newest_unserved()
        if newest is not None:
            self._serve(newest)
        return self.newest_problem is None

    def load(self, path: str | os.PathLike) -> LoadedImage:
        """An uploaded file decoded once (at display size, with its pixel hash); the last few
        files are kept, so a preview, a prediction and redraws decode it once."""
        loaded = self._recent.image(str(path))
        if loaded is None:
            loaded = load_image(path, max_bytes=self.settings.max_upload_bytes,
                                min_side=self._predictor.min_side)
            self._recent.put(str(path), loaded)
        return loaded

    def predict(self, image: ImageSource, method: str = DEFAULT_METHOD, opacity: float = DEFAULT_OPACITY,
                user: str | None = None) -> Prediction:
        """One image's prediction; the case store's id for it when its pixels are a stored case.
        Each prediction is recorded in the prediction log (scores, hash, user, latency; no image).

        A file path's decoded image and heat maps are kept for a few recent files, so that
        :meth:`rerender` can redraw them with another method or opacity without reading it again.
        """
        started = time.perf_counter()
        prediction = self._draw(image, method, opacity)
        record = prediction_record(prediction.details(), user, time.perf_counter() - started)
        try:
            self.predictions.append(record)
        except OSError as error:  # a full or read-only disk: the prediction needs none (Analytics misses it)
            log.error("a prediction was served but not logged (Analytics will not count it): %s", error)
        return prediction

    def _draw(self, image: ImageSource, method: str, opacity: float, keep: bool = True) -> Prediction:
        """The served model's prediction of ``image`` (not logged); a file's decoded image and the
        drawing are kept for :meth:`rerender` unless ``keep`` is false."""
        predictor = self._predictor
        if not isinstance(image, str | os.PathLike):
            return self._stored(predictor.predict(image, method=method, opacity=opacity))
        loaded = self.load(image)
        prediction = self._stored(predictor.predict(loaded, method=method, opacity=opacity))
        if keep:
            self._recent.put(str(image), loaded, (method, prediction))
        return prediction

    def prediction_records(self, user: str | None) -> list[dict]:
        """The prediction log as ``user`` may see it: everything for a trainer (everyone locally
        when no trainers are named), their own records for a signed-in user, none anonymously."""
        if can_train(user, self.settings).allowed:
            return self.predictions.records()
        return self.own_predictions(user)

    def own_predictions(self, user: str | None) -> list[dict]:
        """``user``'s own records of the prediction log (none for an anonymous caller)."""
        return [] if user is None else [r for r in self.predictions.records() if r.get("user") == user]

    def rerender(self, image: str | os.PathLike, method: str, opacity: float) -> Prediction | None:
        """The last prediction of ``image`` drawn with ``method`` and ``opacity``; None when this
        file was not predicted recently (by the served version). Not a new prediction: not logged."""
        predictor = self._predictor
        drawn = self._recent.drawn(str(image), predictor.version)
        loaded = self._recent.image(str(image))
        if not drawn or loaded is None:
            return None
        if method not in drawn:  # another method: a forward pass on the kept image, no reading
            return self._draw(image, method, opacity)
        shown = drawn[method]
        blended = None if shown.heatmap is None else overlay(loaded.grey, shown.heatmap, opacity)
        return replace(shown, overlay=blended)

    def full_heatmap(self, image: str | os.PathLike, method: str) -> Prediction:
        """A file's prediction with ``method`` (the recent one if drawn), for its full-size heat map;
        not logged: a map alone shows no prediction (an API walk's /heatmap was counted in Analytics),
        nor kept as drawn (a report of the file, which shows one, would take it and not log it)."""
        return self._recent.drawn(str(image), self._predictor.version).get(method) or self._draw(
            image, method, DEFAULT_OPACITY, keep=False)

    def report(self, image: str | os.PathLike, method: str = DEFAULT_METHOD, opacity: float = DEFAULT_OPACITY,
               user: str | None = None) -> bytes:
        """The PDF report of a file's prediction (the recent one when drawn, else predicted now)."""
        served = self._predictor
        prediction = (self.rerender(image, method, opacity)
                      or self.predict(image, method=method, opacity=opacity, user=user))
        config = (served.config if prediction.model_version == served.version  # else swapped meanwhile
                  else self.registry.config(prediction.model_version))
        return prediction_report(prediction, self.load(image).grey, config,
                                 self.card_reference(prediction.model_version), datetime.now(timezone.utc))

    def card_reference(self, version: str) -> str:
        """Where ``version``'s model card is: its URL on the Hub, or (a local store, whose paths are
        the server's) where the app shows it."""
        if self.settings.use_hub_models:
            return f"{self.registry.location}/blob/{version}/README.md"
        return f"the app's Models tab (version {version}; README.md among its files)"

    def _stored(self, prediction: Prediction) -> Prediction:
        """``prediction`` with the stored case of its pixels, if any, and that case's label."""
        case, label = self._case_of(prediction.image_sha256)
        return replace(prediction, stored_case=case if label else None, stored_label=label or None)

    def _case_of(self, sha256: str) -> tuple[str | None, str | None]:
        """The case of these pixels, if any, and its label now (None for a withdrawn case: not stored any
        more)."""
        case = self.cases.case_with_pixels(sha256)
        return case, (self.cases.case_label(case) if case else None)

    def submit(self, image: ImageSource, label: str, metadata: Mapping[str, Any] | None,
               user: str | None = None, *, pending_id: str | None = None) -> dict:
        """One case; ``pending_id``: the label-next pool's image it is (recorded in the audit log)."""
        can_submit(user, self.settings).require()
        metadata, header = _with_the_header(image, metadata)
        receipt = self.cases.append(image, label, metadata)
        if header.stored_note:  # what the header filled in, or where it differs: on record
            receipt["dicom_header"] = header.stored_note
        submitted = self._submitted(image)
        film = _stored_film(receipt["image_sha256"], submitted)
        note = self._base_film_note(film, receipt["label"])
        if note:  # stored, and said what a retrain does with it
            receipt["base_film"] = note
        if copies := self._copies_here(film, receipt["case_id"], keep=True):
            receipt["copy_of"] = copies
        # stored as given (a close-up may have no background), but said: Predict says it of this image
        # (noise was stored unremarked, to be trained on)
        if submitted and (unlike := whole_film_doubt(submitted.grey, submitted.breast, submitted.coloured)):
            receipt["not_like_a_film"] = unlike
        doubt = label_doubt(receipt["label"], receipt.get("metadata") or {})
        if doubt:  # stored as given: a clinician may have meant it
            receipt["label_doubt"] = doubt
        from_pool = {"from_label_next_pool": pending_id} if pending_id else {}
        said = {"label_doubt": doubt} if doubt else {}  # what the submitter was warned of, on record
        self._audited(receipt, lambda: self.audit.record(
            "submission", user, case_id=receipt["case_id"], label=receipt["label"], status=receipt["status"],
            **from_pool, **said,
            metadata_given=sorted(k for k, v in (receipt.get("metadata") or {}).items() if v is not None)))
        return self._after_new_cases(self._said_where(receipt))

    def correct_label(self, case_id: str, label: str, user: str | None = None) -> dict:
        """Change a stored case's confirmed label (those who may submit may correct): the next retrain
        learns it, unless the case is a base film (``base_film`` says so, as a submission's receipt
        does). Recorded in the audit log with the label it had."""
        can_submit(user, self.settings).require()
        receipt = self._said_where(self.cases.correct_label(case_id, label), CORRECTION_QUEUED_ON_A_SPACE)
        films = self._base_films()
        digest = next((d for d in films.tag_by_hash if self.cases.case_with_pixels(d) == receipt["case_id"]),
                      None)
        identity = None if digest is not None or not (len(films) or len(self._stored_here)) else \
            self._case_identity(receipt["case_id"])
        if digest is not None:
            note = self._base_film_note(FilmIdentity(digest), label=receipt["label"])
        elif len(films) and identity and films.tag_of(*identity):
            note = self._base_film_note(identity, receipt["label"])  # a copy: other size, encoding, mirrored
        else:
            note = None
        if note:
            receipt["base_film"] = note
        # copies of its film under other labels still keep a retrain from learning any of them (a walk
        # read "learns the corrected label" while a third copy kept the old one)
        copies = self._copies_here(identity, receipt["case_id"]) if identity else []
        if any(copy["label"] != receipt["label"] for copy in copies):
            receipt["copy_of"] = copies
        return self._audited(receipt, lambda: self.audit.record_amendment(receipt, user))

    def withdraw_case(self, case_id: str, reason: str, user: str | None = None) -> dict:
        """Withdraw a stored case (those who may submit may withdraw; ``reason`` one of
        ``WITHDRAWAL_REASONS``): no later retrain, count or list has it. Recorded in the audit log
        with the label it had and the reason."""
        can_submit(user, self.settings).require()
        receipt = self._said_where(self.cases.withdraw(case_id, reason), WITHDRAWAL_QUEUED_ON_A_SPACE)
        self._audited(receipt, lambda: self.audit.record_amendment(receipt, user))
        self.withdrawn_fingerprints()  # its image read back now, while it is at hand, not at the next submit
        return receipt

    def check_withdrawal(self, case_id: str, reason: str, user: str | None = None) -> tuple[str, str, str]:
        """Before a withdrawal, which the page asks to confirm: who may (as for :meth:`withdraw_case`),
        and the case (its id, or a start naming one case), its label and the listed reason; StoreError
        for an unknown case or reason, or a case withdrawn already."""
        can_submit(user, self.settings).require()
        case = self.cases.resolve_case(case_id)
        listed = self.cases.withdrawal_reason(reason)
        label = self.cases.case_label(case)
        if label is None:
            raise StoreError(f"Case {case} was withdrawn already.")
        return case, label, listed

    @staticmethod
    def _audited(receipt: dict, record: Callable[[], object]) -> dict:
        """``receipt`` of a change already stored, once ``record`` has put it in the audit log. A log
        that cannot be written (a full disk) is said in the receipt's warning and the server's log: the
        change is stored, and was answered as an unexpected error (a fault probe)."""
        try:
            record()
        except OSError as error:
            log.error("stored, but not recorded in the audit log: %s (%s)", error,
                      receipt.get("case_id") or receipt.get("case_ids"))
            receipt["warning"] = " ".join(filter(None, (receipt.get("warning"), not_audited(error))))
        return receipt

    def _said_where(self, receipt: dict, queued_here: str = UPLOAD_QUEUED_ON_A_SPACE) -> dict:
        """``receipt``, warning that what is queued on a Space can still be lost (``queued_here``)."""
        if receipt["status"] == "queued" and not self.settings.home_outlives_restarts:
            receipt["warning"] = " ".join(filter(None, (receipt.get("warning"), queued_here)))
        return receipt

    def submit_many(self, items: Iterable[tuple[ImageSource, str, Mapping[str, Any] | None]],
                    user: str | None = None, *, skip_duplicates: bool = False,
                    names: Sequence[str] | None = None) -> dict:
        """A batch of cases as one shard (see ``CaseStore.append_many``). The receipt names the stored
        images that do not look like a whole film (``not_like_a_film``: case id, name, why), as a
        single submission's does, and a DICOM's side and view are taken from its header where its
        metadata leaves them empty (``dicom_headers``: case id, name, what was filled in or differs)."""
        can_submit(user, self.settings).require()
        headed = [(image, label, *_with_the_header(image, metadata)) for image, label, metadata in items]
        items = [(image, label, metadata) for image, label, metadata, _ in headed]
        receipt = self.cases.append_many(items, skip_duplicates=skip_duplicates, names=names)
        if receipt["skipped"] and not receipt["case_ids"]:  # every image skipped: nothing to record
            skipped = receipt["skipped"]
            named = ", ".join(s["name"] for s in skipped[:5])
            what = ("the image in this upload was" if len(skipped) == 1 else
                    f"all {len(skipped)} images in this upload were")
            before = ("submitted before (stored, or withdrawn)" if any(s.get("withdrawn") for s in skipped)
                      else "submitted before")
            conflicts = f" {label_conflict_text(skipped)}".rstrip()  # names, so in the message, not the log
            raise StoreError(f"Nothing new was stored: {what} {before} "
                             f"({named}{', ...' if len(skipped) > 5 else ''}).{conflicts}",
                             logged=f"Nothing new was stored: {what} {before}.")
        skipped = {skip["index"] for skip in receipt["skipped"]}
        kept = [i for i in range(len(items)) if i not in skipped]
        films = self._base_films()
        found: list[tuple[BaseFilm, str, str]] = []  # the film, the label given, the file's name
        unlike: list[dict[str, str]] = []
        copies: list[dict[str, str]] = []
        headers: list[dict[str, str]] = []
        for case_id, digest, label, i in zip(receipt["case_ids"], receipt["image_sha256"], receipt["labels"],
                                             kept, strict=True):
            name = names[i] if names else f"item {i + 1}"
            header = headed[i][3]
            if header.stored_note:
                headers.append({"case_id": case_id, "name": name, "note": header.stored_note,
                                "differs": bool(header.differ)})
            image = self._submitted(items[i][0], one=False)  # read once, as Predict reads it; not kept
            identity = _stored_film(digest, image)
            film = films.tag_of(*identity)
            if film is not None:
                found.append((film, label, name))
            if earlier := self._copies_here(identity, case_id, keep=True):
                copies.append({"case_id": case_id, "name": name, "copy_of": earlier})
            if image and (why := whole_film_doubt(image.grey, image.breast, image.coloured)):
                unlike.append({"case_id": case_id, "name": name, "why": why})
        if unlike:  # stored as given, but said, as for one case
            receipt["not_like_a_film"] = unlike
        if copies:
            receipt["copies_of_cases"] = copies
        if headers:
            receipt["dicom_headers"] = headers
        parts = [film.part for film, _, _ in found]
        if parts:  # stored, and said: a retrain leaves them out (pipeline)
            one, held_out = len(parts) == 1, parts.count("holdout")
            them, s = ("it", "") if one else ("them", "s")
            if held_out == len(parts):
                judged = f" ({'it is' if one else 'they are'} held out: every retrain is judged on {them})"
            elif held_out:
                which = "it" if held_out == 1 else "those"
                judged = (f" ({held_out} of them {'is' if held_out == 1 else 'are'} held out: every retrain "
                          f"is judged on {which})")
            else:
                judged = ""
            others = sum(film.label != label for film, label, _ in found)
            otherwise = (f"; the base data gives {'it' if one else f'{others} of them'} another label than "
                         "the one given here" if others else "")
            named = ", ".join(name for _, _, name in found[:10]) + (", ..." if len(found) > 10 else "")
            receipt["base_films"] = (f"{len(parts)} of these images {'is a film' if one else 'are films'} of "
                                     f"the base data{judged}: a retrain leaves {them} out of training and "
                                     f"keeps the base data's label{s} for {them}{otherwise}; "
                                     f"{BASE_LABEL_KEPT} ({'the image' if one else 'the images'}: {named})")
        self._audited(receipt, lambda: self.audit.record(
            "bulk import", user, case_ids=receipt["case_ids"], status=receipt["status"],
            skipped=len(receipt["skipped"]), labels=dict(Counter(receipt["labels"]))))
        return self._after_new_cases(self._said_where(receipt))

    def _copies_here(self, film: FilmIdentity, case_id: str, *, keep: bool = False) -> list[dict]:
        """The active cases this process stored that the film of case ``case_id`` is a copy of (another
        size or encoding, or mirrored; its exact pixels are refused), each with its label now; ``keep``:
        a case just stored, kept among them under the same lock. A retrain learns such copies once, and
        none of them while their labels differ, and the receipt said nothing (an API probe). Known for
        the cases this process stored (not another replica's, nor before a restart): the retrain's
        report names every dispute."""
        if film.fingerprint is None:
            return []
        with self._stored_here_lock:
            earlier = [case for case in self._stored_here.tags_of(*film) if case != case_id]
            if keep:
                self._stored_here.add(film, case_id)
        return self._active(earlier)

    def _active(self, case_ids: Sequence[str]) -> list[dict]:
        """These cases with their labels now, withdrawn ones left out."""
        labelled = [{"case_id": case, "label": self.cases.case_label(case)} for case in case_ids]
        return [case for case in labelled if case["label"] is not None]

    def _base_film_note(self, case: FilmIdentity, label: str | None = None) -> str | None:
        """What a retrain does with a case of this film (its pixels' hash, and its fingerprints to
        recognise a copy at another size or encoding, or mirrored; ``label``: the case's) when it is a
        film of the base data (left out, as the pipeline leaves such cases out; its base label named) or
        one the served version learnt from; None otherwise."""
        film = self._base_films().tag_of(*case)
        if film is not None and film.part == "holdout":
            kept = f"; {BASE_LABEL_KEPT}" if label is not None and label != film.label else ""
            return f"{HELD_OUT_FILM}; it is {base_label_said(film, label)}{kept}"
        served = self._predictor
        learnt = f"one of the films {served.version} learnt from" if served.learnt_from(case) else None
        if film is not None:
            return (f"this image is {learnt or 'a film of the base data'} ({base_label_said(film, label)}): "
                    "a retrain leaves this case out of training and keeps the base data's label for the "
                    f"film; {BASE_LABEL_KEPT}")
        if learnt:  # the served version's data is not the base data here (another copy, another set)
            return (f"this image is {learnt}, but not a film of the base data a retrain uses here, so a "
                    "retrain trains on this case with the label given")
        return None

    def withdrawn_fingerprints(self, withdrawn: Sequence[str] | None = None) -> dict[str, str]:
        """The withdrawn cases' images' fingerprints (case id -> fingerprint), to recognise a copy of
        one at another size or encoding: a withdrawn case's image is not taken again, nor trained on in
        any copy. Each is read back once (withdrawals are few and final). ``withdrawn``: their ids, when
        the caller has them (else from the store's index)."""
        withdrawn = self.cases.withdrawn_cases() if withdrawn is None else withdrawn
        with self._withdrawn_lock:  # one request reads a newly withdrawn image; the others wait for it
            for case_id in withdrawn:
                if case_id not in self._withdrawn_prints:
                    fingerprint = self._withdrawn_fingerprint(case_id)
                    if fingerprint is not None:  # else tried again at the next need (a Hub back up)
                        self._withdrawn_prints[case_id] = fingerprint
        return {case_id: self._withdrawn_prints[case_id] for case_id in withdrawn
                if case_id in self._withdrawn_prints}

    def _withdrawn_fingerprint(self, case_id: str) -> str | None:
        """A withdrawn case's image's fingerprint, read back; None when its image cannot be read now
        (logged as an error the first time: copies of it are not recognised until it can be)."""
        try:
            return self._identity_of(self.cases.case_png(case_id, withdrawn_too=True)).fingerprint
        except (MammoError, OSError) as error:
            if case_id not in self._withdrawn_unread:
                self._withdrawn_unread.add(case_id)
                log.error("withdrawn case %s could not be read, so copies of its image are not recognised "
                          "until it can be: %s", case_id, error)
            return None

    def _identity_of(self, image: ImageSource) -> FilmIdentity:
        """An image's identity, read as a stored case's is read back (the same path for both sides of
        a comparison: a film over the display size is shrunk first)."""
        return load_image(image, min_side=self._predictor.min_side).identity

    def _withdrawn_copy_of(self, grey: np.ndarray) -> str | None:
        """The withdrawn case whose image ``grey`` (an incoming image's pixels) is a copy of at another
        size or encoding, by their fingerprints; None. The case store asks it of every image it is
        given (``CaseStore.copy_of_withdrawn``), so a submission, Label next and a bulk upload refuse
        it alike."""
        withdrawn = self.withdrawn_fingerprints()
        if not withdrawn:
            return None
        try:
            incoming = self._identity_of(grey)
        except MammoError:  # one Predict would not read (too small): compared by its pixels only
            return None
        found = Fingerprints(withdrawn.values()).find(incoming.fingerprint, incoming.mirrored)
        return None if found is None else list(withdrawn)[found]

    def _submitted(self, image: ImageSource, *, one: bool = True) -> LoadedImage | None:
        """A case's image just stored, decoded as Predict decodes it (``one``: a single submission, whose
        file, just previewed or predicted, is not decoded again; a batch's files are not kept among the
        recent files), for its receipt; None (logged) when it cannot be had, so that a receipt never
        reports a failure for a case stored already."""
        try:
            if one and isinstance(image, str | os.PathLike):
                return self.load(image)
            return load_image(image, max_bytes=self.settings.max_upload_bytes,
                              min_side=self._predictor.min_side)
        except (MammoError, OSError) as error:
            log.warning("the case just stored was not read again (its receipt names only a film of the same "
                        "pixels, and not whether it looks like a film): %s", error)
            return None

    def _case_identity(self, case_id: str) -> FilmIdentity | None:
        """The identity of a stored case's image, read back; None (logged) when it cannot be had, so
        that a receipt never reports a failure for a case stored already."""
        try:
            return self._identity_of(self.cases.case_png(case_id))
        except (MammoError, OSError) as error:
            log.warning("case %s not fingerprinted (its receipt names only a film of the same pixels): %s",
                        case_id, error)
            return None

    def _base_films(self) -> KnownFilms[BaseFilm]:
        """The films of the base data under the served version's split, with their part and label: the
        films whose cases a retrain leaves out (the pipeline's rule,
        copies at another size or encoding included). Decoded once per base folder and split (about 3 s
        for mini-MIAS's 258 films at 1024 px); none without base data, or when it cannot be read
        (logged: the receipt then says nothing)."""
        folder = self._base_folder()
        if folder is None or not folder.is_dir():
            return KnownFilms()
        key = (folder, self._split(self._predictor))
        with self._base_films_lock:
            if self._base_films_of[0] != key:
                try:
                    films = [(name, film) for name, part in base_splits([folder], None, key[1]).items()
                             for film in part]
                    identities = film_identities([film for _, film in films], self._predictor.min_side)
                    tags = (BaseFilm(part, film.label) for part, film in films)
                    self._base_films_of = key, KnownFilms(zip(identities, tags, strict=True))
                except (MammoError, OSError) as error:
                    log.warning("the base data's films not read to check submissions against (%s)", error)
                    return KnownFilms()
            return self._base_films_of[1]

    def new_cases_since_retrain(self) -> int:
        """Cases submitted since the newest retrain (the served version's or a newer rejected
        candidate's) read the cases: its report's ``cases_submitted``, withdrawn ones included, so
        that a withdrawal does not hide a new case (``cases_used`` in reports made before it was
        recorded); all of them when none ran."""
        reports = [(self._predictor.config.get("mammo") or {}).get("report") or {}]
        reports += [r.get("report") or {} for r in self.registry.rejected()]
        seen = max((r.get("cases_submitted", r.get("cases_used")) or 0 for r in reports), default=0)
        return max(0, self.cases.submitted_total() - seen)

    def _after_new_cases(self, receipt: dict) -> dict:
        """With MAMMO_AUTO_RETRAIN_EVERY=N: start a gated retrain in the background once N new cases
        are stored (never two at once); the receipt says when it started one."""
        every = self.settings.auto_retrain_every
        if not every or self._retrain_lock.locked() or self.new_cases_since_retrain() < every:
            return receipt
        if self.cases.submitted_total() - self._auto_failed_at < every:
            return receipt  # the last one failed (see the log and the audit): retried N cases later
        threading.Thread(target=self._auto_retrain, name="auto-retrain", daemon=True).start()
        return {**receipt, "auto_retrain": f"started: {every} new cases since the last retrain"}

    def _auto_retrain(self) -> None:
        try:
            summary = self._locked_retrain(RetrainOptions(), AUTO_USER, None, None)
        except RetrainBusy:
            return  # a retrain started meanwhile: it uses these cases too
        except Exception as error:  # noqa: BLE001 - a background thread: log it, the app keeps serving
            self._auto_failed_at = self.cases.submitted_total()
            if isinstance(error, MammoError):  # a refusal (base data missing or changed...): one line
                log.warning("the automatic retrain was refused: %s; next try after %d more new cases",
                            error, self.settings.auto_retrain_every)
            else:
                log.exception("the automatic retrain failed")
            return
        log.info("automatic retrain: %s (serving %s)", summary["reason"], summary["version"])

    def offer_for_labelling(self, image: str | os.PathLike, user: str | None = None) -> dict:
        """Keep an uploaded image in the "label next" pool, at the visitor's explicit offer: its
        pixels re-encoded (no tag, no file name) with the served model's uncertainty and scores.
        Its entry, with ``already_offered`` true when these pixels were waiting already (the first
        offer stays; the audit log records it once)."""
        loaded = self.load(image)
        colour = colour_doubt(loaded.coloured)  # known from the decoding: no model run for a photograph
        if colour:
            raise StoreError(f"This image is not taken for labelling: {colour}.")
        drawn = self._recent.drawn(str(image), self._predictor.version)
        # scored here without a heat map, and neither logged nor kept as drawn: an offer is not a
        # prediction shown to anyone (a redraw, report or full-size map of a drawn one is not logged)
        prediction = (next(iter(drawn.values()), None)
                      or self._predictor.predict_many([loaded], method=None)[0])
        refused = self._not_to_label(prediction.image_sha256, prediction.in_training_data,
                                     prediction.model_version)
        if refused:
            raise StoreError(refused)
        grey = read_image(image, max_bytes=self.settings.max_upload_bytes,  # the pixels at full size
                          min_side=self._predictor.min_side)
        details = prediction.details()
        entry, new = self.pending.offer(prediction.image_sha256, encode_png(grey), {
            "uncertainty": (details.get("uncertainty") or {}).get("spread"),
            "malignancy_score": details.get("malignancy_score"), "label": details.get("label"),
            "model_version": details.get("model_version")})
        offered = {**entry, "already_offered": not new}
        if new:
            self._audited(offered, lambda: self.audit.record("offered for labelling", user,
                                                             pending_id=entry["id"]))
        return offered

    def offer_refusal(self, image: str | os.PathLike) -> str | None:
        """Why an uploaded image would not be taken for labelling, known before any offer: it is a
        stored case (or was, since withdrawn), or one of the films the served model learnt from; None
        when nothing says so yet (an offer may still be refused, a colour photograph for one)."""
        loaded, served = self.load(image), self._predictor
        return self._not_to_label(loaded.sha256, served.learnt_from(loaded.identity), served.version)

    def _not_to_label(self, sha256: str, learnt: bool | None, version: str) -> str | None:
        """Why the image of these pixels has nothing to label, if it has nothing."""
        stored, label = self._case_of(sha256)
        if stored and label is None:
            return f"This image was case {stored}, since withdrawn: it is not taken again."
        if stored:
            return f"This image is already case {stored} (labelled): there is nothing to label."
        if learnt:
            return (f"This image is one of the films model {version} learnt from: it is labelled in that "
                    "model's training data, so there is nothing to label.")
        return None

    def pending_images(self, user: str | None = None) -> list[dict]:
        """The "label next" pool, the most uncertain first (for those who may submit cases). An image
        stored as a case meanwhile (a bulk upload, another page, the API) has left it."""
        can_submit(user, self.settings).require()
        entries = self.pending.entries()
        for stored in [e for e in entries if self.cases.case_with_pixels(e["id"])]:
            self.pending.remove(stored["id"], missing_ok=True)  # a case now: nothing to label
            entries.remove(stored)
        return entries

    def pending_png(self, pending_id: str, user: str | None = None) -> bytes:
        can_submit(user, self.settings).require()
        return self.pending.png(pending_id)

    def label_pending(self, pending_id: str, label: str, metadata: Mapping[str, Any] | None,
                      user: str | None = None) -> dict:
        """A pending image becomes a case with a clinician's label, and leaves the pool."""
        receipt = self.submit(self.pending.png(pending_id), label, metadata, user=user, pending_id=pending_id)
        self.pending.remove(pending_id, missing_ok=True)  # a case now, whoever removed it meanwhile
        return receipt

    def remove_pending(self, pending_id: str, user: str | None = None) -> None:
        can_submit(user, self.settings).require()
        self.pending.remove(pending_id)  # a clear error when it is gone already
        self.audit.record("removed from the label-next pool", user, pending_id=pending_id)

    def case_png(self, case_id: str) -> bytes:
        """The stored (re-encoded, tag-free) PNG of a submitted case."""
        return self.cases.case_png(case_id)

    def submit_uploads(self, paths: Iterable[str | Path], label: str | None,
                       user: str | None = None) -> dict:
        """A bulk upload as one batch: image files (all with ``label``) and zips of label folders.
        Images already stored are skipped and listed (by file name) in the receipt's ``skipped``."""
        can_submit(user, self.settings).require()  # before a zip is unpacked into memory
        limit = self.settings.max_upload_bytes
        items: list[tuple[ImageSource, str, None]] = []
        names: list[str] = []
        documents: list[str] = []  # beside the images in a zip: left out, and named
        labels = {known.lower(): known for known in self.labels}  # a "Benign/" folder is benign
        paths = [Path(path) for path in paths]
        loose = [path.name for path in paths if path.suffix.lower() != ".zip"]
        if loose and not label:
            named = ", ".join(loose[:3]) + (", …" if len(loose) > 3 else "")
            raise StoreError(f"Nothing was stored: pick the label of the images uploaded on their own "
                             f"({named}); a zip of label folders carries its own labels, an image alone "
                             "does not.", logged=f"Nothing was stored: no label for {len(loose)} "
                             f"image{'' if len(loose) == 1 else 's'} uploaded on their own")  # names unlogged
        for path in paths:
            if path.suffix.lower() == ".zip":
                try:
                    found: list[str] = []
                    for data, zip_label, name in zip_cases(path, limit, documents=found):
                        items.append((data, labels.get(zip_label.lower(), zip_label), None))
                        names.append(f"{path.name}: {zip_label}/{name}")
                    documents += [f"{path.name}: {name}" for name in found]
                except BulkError as error:  # the whole upload is refused: say so, and which zip
                    raise BulkError(f"Nothing was stored: {path.name}: {error}",
                                    logged=f"Nothing was stored: a zip: {error.logged}") from error
            else:
                items.append((str(path), label, None))
                names.append(path.name)
        if not items:
            raise StoreError("Choose image files or a zip of an imagefolder first.")
        receipt = self.submit_many(items, user=user, skip_duplicates=True, names=names)
        return {**receipt, "not_images": documents} if documents else receipt

    def base_data(self) -> Path:
        """The base data's folder for a retrain (a Hub repo's newest commit), or a RetrainError."""
        base = self._base_folder(refresh=True)
        if base is None or not base.is_dir():
            source = base_data_source(self.settings)
            why = ("unset" if source is None else f"{source} could not be fetched: {self._base_problem}"
                   if self.settings.base_data_repo else f"{source} is missing")
            raise RetrainError("Retraining needs the base data (MAMMO_BASE_DATA: a local imagefolder or "
                               f"a Hub dataset repo, with patient_id metadata); {why}.")
        return base

    def data_summary(self) -> dict[str, dict[str, int]]:
        """Images per label: the base data's films, the submitted cases a retrain trains on, and the
        submitted cases whose image is a base film (under their label, as corrected): a retrain leaves
        those out (a held-out film is never trained on, a training film not twice)."""
        base = _base_counts(self._base_folder())
        cases = self.cases.counts()
        # decoded once (about 3 s), not for no case; by their pixels: a case that is a copy of a base film
        # at another size or encoding counts here as a case (a retrain's report counts it as left out)
        films = self._base_films().tag_by_hash if any(cases.values()) else {}
        found = (self.cases.case_with_pixels(digest) for digest in films)
        resubmitted = Counter(self.cases.case_label(case_id) for case_id in found if case_id)
        return {label: {"base": base.get(label, 0), "cases": cases.get(label, 0) - resubmitted[label],
                        BASE_FILM_CASES: resubmitted[label]}
                for label in label_order([*self.labels, *base, *cases])}

    def describe(self) -> str:
        """One line for the start-up log: the served version, the stores and the base data."""
        source, base = base_data_source(self.settings), self._base_folder()
        if source is None:
            where = "none (MAMMO_BASE_DATA unset: Retrain is off)"
        elif base is None or not base.is_dir():
            where = f"{source} (missing{': ' + self._base_problem if self._base_problem else ''})"
        else:
            where = source if base == self.settings.base_data else f"{source}, fetched to {base}"
        every = self.settings.auto_retrain_every
        return (f"serving {self._predictor.version} ({self._predictor.model_dir}); models at "
                f"{self.registry.location}; cases at {self.cases.location}; "
                f"base data for retraining: {where}; automatic retraining: "
                f"{f'after every {every} new cases' if every else 'off'}")

    def health(self) -> dict:
        """For monitors: the served version, whether the stores (and the Hub, when used) answer,
        whether a retrain runs, and the uptime. ``status`` is "ok" or "degraded"."""
        settings = self.settings
        hub: dict | None = None
        if settings.use_hub_cases or settings.use_hub_models or settings.base_data_repo:
            api = hub_api(settings)
            try:
                check_reachable(api)  # one request, no retry loop
                hub = {"reachable": True, "endpoint": api.endpoint}
            except HubError as error:
                hub = {"reachable": False, "endpoint": api.endpoint, "error": str(error)}
        home_ok = settings.home.is_dir() and os.access(settings.home, os.W_OK)
        stores = {"cases": (self.cases.location, settings.use_hub_cases),
                  "models": (self.registry.location, settings.use_hub_models)}
        report = {name: {"location": where, "reachable": hub["reachable"] if on_hub and hub else home_ok}
                  for name, (where, on_hub) in stores.items()}
        report["cases"]["queued_shards"] = self.cases.pending()  # written here, not yet on the Hub
        base = self._base_folder()
        healthy = all(store["reachable"] for store in report.values()) and (hub is None or hub["reachable"])
        healthy = healthy and self.newest_problem is None
        return {"status": "ok" if healthy else "degraded", "model_version": self._predictor.version,
                "runtime": self._predictor.runtime, "newest_problem": self.newest_problem,
                **report, "hub": hub,
                "base_data": {"source": base_data_source(settings),
                              "available": base is not None and base.is_dir()},
                # audit events in the log here that could not be queued for the Hub's copy (logged)
                "audit_events_not_queued": self.audit.not_queued,
                "retrain_running": self.retrain_started is not None,
                "auto_retrain": self.auto_retrain_state(),
                "uptime_s": round(time.monotonic() - self._started, 1)}

    def auto_retrain_state(self) -> dict | None:
        """``{"every": N, "new_cases": k}`` when automatic retraining is on, else None."""
        every = self.settings.auto_retrain_every
        return {"every": every, "new_cases": self.new_cases_since_retrain()} if every else None

    def served_config(self) -> dict:
        """The ``config.json`` of the served version."""
        return self._predictor.config

    def _split(self, predictor: Predictor) -> SplitSpec:
        return SplitSpec.from_model_config(predictor.config) or SplitSpec()

    def retrain(self, options: RetrainOptions, user: str | None = None,
                progress: Progress | None = None,
                on_epoch: Callable[[EpochLog], None] | None = None) -> dict:
        """Train a candidate on base data + cases (fine-tuned from the served version, or from ImageNet
        with ``options.from_current`` off); publish it only if it passes the gate."""
        can_train(user, self.settings).require()
        return self._locked_retrain(options, user, progress, on_epoch)

    def _locked_retrain(self, options: RetrainOptions, user: str | None, progress: Progress | None,
                        on_epoch: Callable[[EpochLog], None] | None) -> dict:
        options.check(self._patch_size())
        base = self.base_data()
        if not self._retrain_lock.acquire(blocking=False):
            raise RetrainBusy(self._busy("only one runs at a time. Wait for it to finish."))
        try:
            if not self._serve_newest():  # a retrain starts from, and is judged against, the newest one
                raise RetrainError(f"{self.newest_problem}. A retrain compares its candidate with the newest "
                                   "version and publishes only after it: serve an earlier version again "
                                   "(Models tab), or repair the registry, then retrain.")
            self._retrain_config(self._predictor, options)  # options the recipe cannot take: refused here
            self.retrain_started = datetime.now(timezone.utc).strftime("%H:%M:%S UTC")
            self._last_retrain = self.audit.record("retrain started", user, options=asdict(options),
                                                   served=self._predictor.version)
            def told(fraction: float, message: str) -> None:
                self.retrain_progress = (fraction, message)
                if progress:
                    progress(fraction, message)

            try:
                summary = self._retrain(options, user, base, told, on_epoch)
            except BaseException as error:
                published = {"version": error.version} if isinstance(error, PublishedNotServed) else {}
                self._last_retrain = self.audit.record(
                    "promotion, not yet served" if published else "retrain failed", user,
                    options=asdict(options), error=f"{type(error).__name__}: {error}", **published)
                raise
            self._last_retrain = self.audit.record(
                "promotion" if summary["promoted"] else "rejection", user, options=asdict(options),
                version=summary["version"], rejected_id=summary["rejected_id"], reason=summary["reason"],
                published_meanwhile=summary["published_meanwhile"],
                # every case read, those trained on, and those not: their images are base films, later
                # copies of a case, or copies of one film under different labels (named)
                cases_used=summary["cases_used"], cases_trained_on=summary["cases_trained_on"],
                cases_left_out=summary["cases_left_out"], cases_repeated=summary["cases_repeated"],
                cases_disputed=summary["cases_disputed"],
                cases_in_label_conflict=summary["cases_in_label_conflict"],
                cases_withdrawn_meanwhile=summary["cases_withdrawn_meanwhile"],
                served_before=summary["current_version"],
                **{f"{who}_{key}": _audited(summary[f"{who}_metrics"], key)
                   for who in ("candidate", "current") for key in _AUDITED_METRICS})
            return summary
        finally:
            self.retrain_started = self.retrain_progress = None
            self._retrain_lock.release()

    def last_retrain(self) -> dict | None:
        """The audit event of the newest retrain: its start, or its end (promoted, rejected or failed);
        None when the audit log has none."""
        if not self._last_retrain_read:
            self._last_retrain_read = True
            known = (self._last_retrain, self.audit.latest(RETRAIN_EVENTS))  # fetched ones may be older
            self._last_retrain = max(filter(None, known), key=lambda event: event.get("at", ""), default=None)
        return self._last_retrain

    def last_retrain_summary(self) -> dict | None:
        """The last retrain's summary, as it returned it, when it ended in a verdict (a promotion or a
        rejection): rebuilt from its audit event and its candidate's stored config, for a page opened
        after it ended. None when it failed, runs, none is recorded or its candidate cannot be read."""
        event = self.last_retrain()
        if not event or event.get("action") not in ("promotion", "rejection"):
            return None
        if self._last_summary[0] is event:  # read once per retrain, not at every opening of the tab
            return self._last_summary[1]
        details = event.get("details") or {}
        try:
            if event["action"] == "rejection":
                summary = self.rejected_summary(details["rejected_id"])
            else:
                summary = retrain_summary(self.registry.config(details["version"])["mammo"],
                                          details["version"], None)
        except (MammoError, KeyError) as error:
            log.warning("the last retrain's results cannot be shown: %s", error)
            summary = None
        self._last_summary = (event, summary)
        return summary

    def rejected_summary(self, rejected_id: str) -> dict:
        """The summary the retrain that made rejected candidate ``rejected_id`` returned."""
        mammo = self.registry.rejected_config(rejected_id).get("mammo") or {}
        try:
            report = mammo["report"]  # the version served after it: the compared one, or a newer one
            return retrain_summary(mammo, report.get("published_meanwhile") or report["current_version"],
                                   rejected_id)
        except (KeyError, TypeError) as error:
            raise RegistryError(f"rejected candidate {rejected_id} records no retrain summary "
                                f"(missing {error})") from error

    def _busy(self, advice: str) -> str:
        """Why the served version cannot change now (a retrain or a rollback holds it), with ``advice``."""
        if self.retrain_started is None:
            return "Another version is being served again right now; try again in a moment."
        return f"A retrain started at {self.retrain_started} is still running; {advice}"

    def _merge_small_case_shards(self) -> None:
        """Before a retrain reads every case: merge the one-case shards the Submit tab writes, so that
        loading (and the next app start) does not slow down with every submission. Only a speed-up: a
        failure is logged and the retrain reads the shards as they are."""
        try:
            merges = self.cases.compact()
        except (MammoError, OSError) as error:
            log.warning("case shards not merged before the retrain: %s", error)
            return
        if merges["shards_written"]:
            log.info("merged %d case shards into %d before the retrain", merges["shards_merged"],
                     merges["shards_written"])

    def _retrain(self, options: RetrainOptions, user: str | None, base: Path, progress: Progress,
                 on_epoch: Callable[[EpochLog], None] | None) -> dict:
        current = self._predictor
        split = self._split(current)
        progress(0.0, "checking the held-out films")
        holdout = self._fair_holdout(current, base, split)
        progress(0.0, "reading submitted cases")
        self._merge_small_case_shards()
        submitted = self.cases.submitted_total()  # before the load: a case stored meanwhile counts as new
        cases = case_examples(self.cases.load())
        amended = self.cases.amended_cases()  # as the load applied them (a Hub store fetched the repo's)
        config = self._retrain_config(current, options)

        epoch = 0

        def step(done: int, total: int) -> None:
            nonlocal epoch
            kind = config.stage(epoch + 1) or FILM_STAGE  # the film recipe trains on whole films too
            # "epoch 1 of 7" read oddly after 1 epoch was asked: the rest are the recipe's second stage
            films = config.film_epochs
            then = (f"; {films} whole-film epoch{'s follow' if films > 1 else ' follows'}"
                    if kind == PATCH_STAGE and films else "")
            after = "; scoring films before the next step" if done == total else ""
            progress(0.9 * (epoch + done / total) / config.total_epochs,
                     f"epoch {epoch + 1} of {config.total_epochs} ({kind}{then}): batch {done}/{total}"
                     f"{after}")
            epoch += done == total

        progress(0.0, TRAINING_BEGINS)  # its checks passed: what fails from here failed in training
        work = Path(tempfile.mkdtemp(prefix="retrain-", dir=self._work_dir()))
        try:
            with file_lock(work / ".lock"):  # a killed retrain leaves it unlocked: swept at start
                mammo = train_to_folder(
                    [base], work / "candidate", config, split=split, extra_train=cases, progress=on_epoch,
                    step=step, command=f"retrain in the app ({options})", parent=current.version,
                    data_names=[base_data_name(self.settings, base)],
                    # the ids from the amendments the load applied: no index is built for a store
                    # without withdrawals
                    withheld=list(self.withdrawn_fingerprints(
                        [case_id for case_id, label in amended.items() if label is None]).values()),
                )
                progress(0.95, "evaluating the current version and the candidate on the same holdout")
                current_probs = model_probabilities(current.model, holdout, current.labels,
                                                    current.preprocess, current.min_side)
                current_metrics = evaluate_probabilities(holdout, current_probs, current.labels,
                                                         current.threshold)
                candidate = Predictor(work / "candidate")  # it loads: checked before anything is published
                candidate_probs = model_probabilities(candidate.model, holdout, candidate.labels,
                                                      candidate.preprocess, candidate.min_side)
                split_name = mammo["split"]["description"]
                # a served version with no cut-off has no review flag to keep (evaluated at 0.5 above)
                flag_of_current = current_metrics if current.threshold is not None else {
                    **current_metrics, "sensitivity": None}
                metric = self.settings.gate_metric
                served_report = (current.config.get("mammo") or {}).get("report") or {}
                films = films_key(holdout, current.min_side)
                # a flag that flags every film tells nothing: its sensitivity of 1 is no bar for the line
                best = line_best(served_report.get("gate_best"), metric, films, current.version,
                                 flag_kept(flag_of_current) if metric == "sensitivity"
                                 else recorded_value(flag_of_current, metric))
                # the flag is held to the most malignant films a flag of the line caught (one that flags
                # every film tells nothing); gated on sensitivity, its false alarms to the line's fewest
                fewest_alarms = line_best(served_report.get("gate_best_specificity"), "specificity", films,
                                          current.version, None if current.threshold is None else
                                          recorded_value(flag_of_current, "specificity")
                                          ) if metric == "sensitivity" else None
                most_flagged = line_best(served_report.get("gate_best_sensitivity"), "sensitivity", films,
                                         current.version, flag_kept(flag_of_current))
                promoted, reason = promotion_decision(
                    mammo["metrics"], flag_of_current, metric, self.settings.gate_tolerance, split=split_name,
                    min_malignant=self.settings.gate_min_malignant, best=best, best_specificity=fewest_alarms,
                    best_flag=most_flagged)
                withdrawn = self._withdrawn_since(cases, amended)
                if withdrawn:  # never published, however it scored
                    promoted, reason = False, withdrawn_meanwhile(withdrawn)
                report = {"promoted": promoted, "reason": reason, "user": user, "cases_used": len(cases),
                          "cases_submitted": submitted,
                          # of the cases read, those with a corrected label; the withdrawn ones left out
                          "cases_corrected": sum(bool(amended.get(case.group)) for case in cases),
                          "cases_withdrawn": sum(label is None for label in amended.values()),
                          "gate_min_malignant": self.settings.gate_min_malignant,
                          "cases_left_out": mammo["data"]["n_cases_left_out"],
                          "cases_withdrawn_copies": mammo["data"]["n_cases_withdrawn_copies"],
                          "cases_trained_on": mammo["data"]["n_cases"],
                          "cases_repeated": mammo["data"]["n_cases_repeated"],
                          "cases_disputed": mammo["data"]["cases_disputed"],
                          "cases_label_conflicts": mammo["data"]["n_cases_label_conflicts"],
                          "cases_in_label_conflict": mammo["data"]["cases_in_label_conflict"],
                          "recipe": config.recipe,
                          "current_version": current.version, "current_metrics": current_metrics,
                          # the best score of the served line on these films: what later retrains keep to
                          "gate_best": best, "gate_best_specificity": fewest_alarms,
                          "gate_best_sensitivity": most_flagged,
                          # where the served version's own recorded figure came from, against this one
                          "current_recorded": recorded_holdout(current.config.get("mammo") or {}),
                          "scored_on": mammo["data"]["sources"],
                          "candidate_metrics": mammo["metrics"],
                          # candidate minus served on the same films, CI resampling patients: the noise
                          "paired_difference": paired_comparison(holdout, current_probs, candidate_probs,
                                                                 current.labels),
                          # simple features, the candidate's training films, the same holdout
                          "baseline_metrics": mammo.get("baseline"),
                          # validation films (calibration, threshold) the starting weights had learnt from
                          "val_learnt_by_init": mammo["data"]["val_learnt_by_init"],
                          # a version another process published while this ran (the candidate passed)
                          "published_meanwhile": None,
                          # cases it trained on withdrawn while it ran (consent, say): never published
                          "cases_withdrawn_meanwhile": withdrawn}
                rejected_id = None
                if promoted:
                    try:
                        version = self.registry.publish(work / "candidate", report, after=current.version)
                    except NewerVersion as newer:  # compared with a version no longer the newest
                        report.update(promoted=False, published_meanwhile=newer.latest,
                                      reason=published_meanwhile(newer.latest, current.version))
                    except RegistryError as error:  # the Hub did not answer: kept, not deleted with work/
                        raise self._unpublished(work / "candidate", report, error) from error
                    else:
                        self._predictor = self._load_published(version, current.version)
                if not report["promoted"]:
                    rejected_id = self.registry.record_rejected(work / "candidate", report)
                    self._serve_newest()  # one published meanwhile (logged when it cannot be)
                    version = self._predictor.version
        finally:
            shutil.rmtree(work, ignore_errors=True)
        progress(1.0, "done")
        return retrain_summary({**mammo, "report": report}, version, rejected_id)

    def _withdrawn_since(self, cases: Sequence[Example], amended: Mapping[str, str | None]) -> list[str]:
        """The ids of ``cases`` (the examples read for a retrain, with the amendments ``amended`` then)
        withdrawn since."""
        now = self.cases.amended_cases()
        return sorted({case.group for case in cases
                       if now.get(case.group, "") is None and amended.get(case.group, "") is not None})

    def _fair_holdout(self, current: Predictor, base: Path, split: SplitSpec) -> list:
        """The held-out films of the base data under ``split``, refused when the served version
        learnt from some of them (the base data changed since it was trained): the gate would then
        score it on its own training films."""
        parts = base_splits([base], None, split)
        films = [e for part in parts.values() for e in part]
        labels = label_order(e.label for e in films)
        if labels != current.labels:
            raise RetrainError(f"the base data's labels ({', '.join(labels)}) are not those of "
                               f"{current.version} ({', '.join(current.labels)}): a retrain keeps the "
                               "served labels, so the base data must have the same ones.")
        refuse_learnt_holdout(current.model_dir, current.version, parts["holdout"], "the base data",
                              current.min_side, "Set MAMMO_BASE_DATA to the data it was trained on.")
        return parts["holdout"]

    def _unpublished(self, candidate: Path, report: dict, error: RegistryError) -> RetrainError:
        """A candidate that passed the gate and whose publication failed (the Hub down, or its answer
        lost), kept as a rejected candidate (it was deleted with the retrain's work folder, hours of
        training lost to a short outage: a Hub probe); the error that says so."""
        kept = self.registry.record_rejected(candidate, {**report, "promoted": False,
                                                         "reason": f"{PUBLISH_FAILED}: {error}"})
        return RetrainError(f"The candidate passed the gate, but publishing it failed: {error}. It is kept "
                            f"as rejected candidate {kept} (Models tab). If the Hub took it after all, it "
                            "is listed and served once the Hub answers.")

    def _load_published(self, version: str, served: str) -> Predictor:
        """The just-published ``version``, loaded back from the registry to serve."""
        try:
            return Predictor(self.registry.load(version))
        except (MammoError, OSError) as error:
            raise PublishedNotServed(f"{version} passed the gate and is published, but it could not be "
                                     f"loaded back to serve ({error}); {served} is still served. The app "
                                     "tries again at its next check of the registry (MAMMO_FOLLOW_SECONDS) "
                                     "and when it restarts.", version) from error

    def film_size_warning(self, options: RetrainOptions) -> str | None:
        """Why a retrain with ``options`` is likely to fail, when its films would be too small for the
        served recipe's patches (it still runs as asked); None otherwise, or when the options are
        refused anyway (the retrain says why)."""
        try:
            config = self._retrain_config(self._predictor, options)
        except (RetrainError, ValueError):
            return None
        return small_films_warning(config.to_dict())

    def image_sizes(self) -> tuple[int, int]:
        """The image sizes a retrain of the served recipe takes besides 0 (the current model's)."""
        return RetrainOptions.image_sizes(self._patch_size())

    def _patch_size(self) -> int | None:
        """The served recipe's patch size (None for the whole-film recipe)."""
        recorded = _recorded_recipe(self._predictor)
        return recorded.patch_size if recorded.recipe == "patch" else None

    @staticmethod
    def _retrain_config(current: Predictor, options: RetrainOptions) -> TrainConfig:
        """The current version's recipe (as its config records it) with the trainer's options."""
        recorded = _recorded_recipe(current)
        try:
            return replace(
                recorded,
                arch=current.config["architecture"] if options.from_current else recorded.arch,
                init=str(current.model_dir) if options.from_current else "imagenet",
                image_size=options.image_size or current.preprocess.image_size,
                crop=current.preprocess.crop, orient=current.preprocess.orient,
                min_side=current.min_side, epochs=options.epochs, seed=options.seed,
            )
        except ValueError as error:
            raise RetrainError(str(error)) from error

    def _work_dir(self) -> Path:
        folder = self.settings.home / "work"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def versions(self) -> list[dict]:
        return self.registry.versions()

    def rollback(self, version: str, user: str | None = None, replacing: str | None = None) -> str:
        """Serve an earlier version again, published as a new version (history stays append-only);
        ``replacing``: the version the trainer was shown as served (refused when another is by now)."""
        can_train(user, self.settings).require()
        for name in (version, replacing):  # not a version's name: said at once, quoted short
            if name is not None and not (isinstance(name, str) and version_number(name)):
                raise RegistryError(f"No version {echoed(name)} in the model registry: versions are named "
                                    "v1, v2, ...")
        if not self._retrain_lock.acquire(blocking=False):  # it may publish: refused now, not queued
            raise RetrainBusy(self._busy(_ROLLBACK_WAITS))
        try:
            replaced = self._predictor.version
            newest_served = self._serve_newest()  # False: a newer version is published but cannot be
            if self._predictor.version != replaced:
                raise NewerVersion(self._predictor.version)
            if replacing is not None and replacing != replaced:
                raise RegistryError(f"{replaced} is served now, not {replacing} as when you were asked: "
                                    f"{version} was not served again. Ask again to compare it with "
                                    f"{replaced}.")
            self._refuse_serving_again(version, replaced, newest_served)
            folder = self.registry.load(version)
            # the newest retrain's count carried over: MAMMO_AUTO_RETRAIN_EVERY counts new cases from it
            used = ((self._predictor.config.get("mammo") or {}).get("report") or {}).get("cases_used")
            # the copy keeps the best its version was held to: the line goes on from it (the versions
            # the trainer turned away from are not held against the next candidates)
            held_to = (self.registry.config(version).get("mammo") or {}).get("report") or {}
            carried = {key: held_to[key] for key in _LINE_RECORDS if held_to.get(key)}
            if used is not None:
                carried["cases_used"] = used
            new = self.registry.publish(folder, {"rollback_of": version, "user": user, "replaced": replaced,
                                                 **carried},
                                        after=replaced if newest_served else self.registry.latest())
            self._predictor = Predictor(self.registry.load(new))
            self.newest_problem = None  # the newest version is the one now served
        except NewerVersion as newer:  # the trainer chose without seeing it: they choose again
            self._serve_newest()
            raise RegistryError(f"{newer.latest} was published by another process (a retrain from a shell "
                                f"or a Job) since the versions were listed, so {version} was not served "
                                f"again. Look at {newer.latest} first; serve {version} again after that if "
                                "you still want to.") from newer
        finally:
            self._retrain_lock.release()
        self.audit.record("rollback", user, served_again=version, published_as=new, replaced=replaced)
        return new

    def check_rollback(self, version: str) -> tuple[str, str | None]:
        """Refuses while a retrain runs (RetrainBusy: the rollback would be; a walk was asked to confirm
        it then), and (RegistryError) to serve again the version already served, unless a newer one
        cannot be served (publishing the served one over it then repairs the registry); else the
        served version and ``newest_problem`` it was checked against (read together)."""
        if self.retrain_started is not None:
            raise RetrainBusy(self._busy(_ROLLBACK_WAITS))
        served, problem = self._predictor.version, self.newest_problem
        self._refuse_serving_again(version, served, problem is None)
        return served, problem

    def already_served(self, version: str) -> str | None:
        """The served version where :meth:`check_rollback` refuses ``version`` as served now (itself, or
        its weights through a rollback's copy); None where it would serve it again."""
        served, problem = self._predictor.version, self.newest_problem  # read together, as checked
        try:
            self._refuse_serving_again(version, served, problem is None)
        except RegistryError:
            return served
        return None

    def _refuse_serving_again(self, version: str, served: str, newest_served: bool) -> None:
        """The "already served" rule of :meth:`check_rollback` and :meth:`rollback`: the served version,
        or one whose weights it serves (a rollback's copy; a retried rollback published a copy each
        time, three identical versions for three calls)."""
        if not newest_served:
            return
        if version == served:
            raise RegistryError(f"{version} is the version already served; pick an earlier one.")
        weights = self._weights_of(version)
        if weights == self._weights_of(served):
            copy = f"{served} is a copy of {weights}" + (f", as {version} is" if version != weights else "")
            raise RegistryError(f"{version}'s weights are already served ({copy}); pick another version.")

    def _weights_of(self, version: str) -> str:
        """The version whose weights ``version`` holds: itself, or the version its rollback copies
        (through copies of copies). A config that cannot be read (the Hub down, a damaged version)
        ends the trail there: it refuses no rollback to other weights."""
        seen = {version}
        while isinstance(copied := rollback_of(self._config_of(version)), str) and copied not in seen:
            seen.add(copied)
            version = copied
        return version

    def _config_of(self, version: str) -> dict:
        """``version``'s config: the served model's as loaded, another's from the registry ({} where
        it cannot be read)."""
        if version == self._predictor.version:
            return self._predictor.config
        try:
            return self.registry.config(version)
        except RegistryError:
            return {}

    def close(self) -> None:
        self._closing.set()
        self.start_checks.join(30)  # its last event queued before the store's outbox stops
        self.predictions.close()  # its last shard goes to the outbox before the store stops
        self.cases.close()
