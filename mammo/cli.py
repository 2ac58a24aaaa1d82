"""``python -m mammo``: train, cv, evaluate, predict, retrain, cases, models (see ``--help`` of each).

Each command imports what it needs when it runs: ``--help`` and a mistyped option are answered at
once, not after torch and the rest have loaded.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import logging
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .choices import (
    DEFAULT_METHOD,
    HEATMAP_METHODS,
    RECIPES,
    TRAINING_DEFAULTS,
    WITHDRAWAL_REASONS,
    listed_reason,
)
from .config import DISCLAIMER
from .errors import MammoError, ModelError, said_in_one_line

if TYPE_CHECKING:
    from .config import Settings
    from .data import Example
    from .predict import Predictor
    from .train import TrainConfig

__all__ = ["main", "resolve_model"]

_VERSION = re.compile(r"^(v\d+|latest)$")
ENSEMBLE_RULE = ("each film's class probabilities averaged over the models (each scoring the film as its "
                 "own config says); threshold: the mean of the models' thresholds")


def resolve_model(ref: str) -> Path:
    """A model folder from a path, or from a registry version (``v3``, ``latest``)."""
    path = Path(ref)
    if path.is_dir():
        return path
    if _VERSION.match(ref):
        from .store import open_registry

        registry = open_registry()
        return registry.load(None if ref == "latest" else ref)
    raise ModelError(f"{ref!r} is neither a model folder nor a version like v1")


def _train_config(args: argparse.Namespace, init: str) -> TrainConfig:
    from .train import TrainConfig

    return TrainConfig(
        recipe=args.recipe, arch=args.arch, init=init, image_size=args.image_size,
        crop=not args.no_crop, orient=not args.no_orient, vertical_flip=not args.no_vertical_flip,
        epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        patience=args.patience, seed=args.seed, min_side=args.min_side,
        patch_size=args.patch_size, top_k=args.top_k, min_coverage=args.min_coverage,
        hard_negatives=args.hard_negatives, grad_accum=args.grad_accum, film_epochs=args.film_epochs,
        film_lr=args.film_lr, film_batch_size=args.film_batch_size, test_time_mirror=args.test_time_mirror,
    )


def _init(ref: str) -> str:
    return ref if ref in ("imagenet", "none") else str(resolve_model(ref))


def _min_side_said(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A training command whose refusal of a small image names the option that accepts it."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from .imaging import ImageTooSmall

        try:
            return command(args)
        except ImageTooSmall as error:  # BreastMNIST's 28 px images (a README walk)
            raise ImageTooSmall(f"{error} To train on images this small, pass --min-side with their "
                                "smallest side (BreastMNIST: --min-side 28).") from error

    return run


@_min_side_said
def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .data import SplitSpec
    from .distributed import is_main_process
    from .pipeline import train_to_folder

    init = _init(args.init)
    config = _train_config(args, init)
    split = SplitSpec(val=args.val_fraction, holdout=args.holdout_fraction, seed=args.seed)
    main = is_main_process()  # under a distributed launch only the main process reports
    bar = tqdm(total=0, unit="batch", disable=None if main else True, file=sys.stderr)

    def step(done: int, total: int) -> None:
        bar.total = total
        bar.update(1)

    def progress(log) -> None:
        shown = {"val_loss": log.val_loss, "val_auc": log.val_auc, "val_acc": log.val_accuracy}
        values = " ".join(f"{name} {value:.3f}" for name, value in shown.items() if value is not None)
        tqdm.write(
            f"epoch {log.epoch}/{log.epochs} train_loss {log.train_loss:.4f} {values} "
            f"{log.seconds:.0f}s{' *' if log.best else ''}",
            file=sys.stderr,
        )
        bar.reset()

    command = "python -m mammo " + shlex.join(sys.argv[1:] if args.argv is None else args.argv)
    mammo = train_to_folder(
        args.data, args.out, config, val=args.val, split=split, progress=progress if main else None,
        step=step,
        command=command, cv_folds=args.cv, workers=args.workers, keep_models=args.keep_models,
        cv_from=args.cv_from, init_folds=args.init_folds,
    )
    bar.close()
    if not main:
        return 0
    report = {"out": str(args.out), "metrics_on": mammo["split"]["metrics_on"],
              "metrics": _brief(mammo["metrics"])}
    if mammo.get("cv"):
        report["cv"] = _brief(mammo["cv"])
    print(json.dumps(report, indent=2))
    return 0


@_min_side_said
def _cv(args: argparse.Namespace) -> int:
    from .cv import cross_validate
    from .data import SplitSpec, folder_examples, label_order, split_by_patient
    from .distributed import is_main_process

    config = _train_config(args, _init(args.init))
    examples = [e for folder in args.data for e in folder_examples(folder)]
    labels = label_order(e.label for e in examples)
    if args.leave_out_holdout:  # the films `train --cv` cross-validates: its cv.json feeds --cv-from
        parts = split_by_patient(examples, SplitSpec(seed=args.seed))
        examples = [*parts["train"], *parts["val"]]
        print(f"cross-validating {len(examples)} films; the {len(parts['holdout'])} films of the "
              "held-out patients stay unseen", file=sys.stderr)

    main = is_main_process()  # under a distributed launch only the main process writes and reports
    summary = cross_validate(examples, labels, config, folds=args.folds, seed=args.seed, workers=args.workers,
                             keep_models=args.keep_models, init_folds=args.init_folds)
    summary["data"] = [str(folder) for folder in args.data]
    if not main:
        return 0
    if args.oof_out:  # what a kept cv.json holds: every tool that reads one reads it
        args.oof_out.write_text(json.dumps(summary) + "\n")
    summary = {k: v for k, v in summary.items() if k not in ("oof", "histories")}
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in _brief(summary).items():
            print(f"{key:>18}: {_rounded(value)}")
        for fold in summary["folds"]:
            print(f"fold {fold['fold']}: n {fold['n']}, AUC malignant {_rounded(fold['auc_malignant'])}, "
                  f"CI {_rounded(fold['auc_malignant_ci95'])} (the network alone, uncalibrated: "
                  f"{_rounded(fold['auc_malignant_uncalibrated'])})")
        print(f"ECE (malignant, calibrated out of fold): {summary['ece_malignant']:.3f}")
        print(f"baseline ({summary['baseline']['model']}), same folds: AUC malignant "
              f"{summary['baseline']['auc_malignant']}")
    return 0


def _retrain(args: argparse.Namespace) -> int:
    """The app's retrain, run here (e.g. on a GPU machine or as a Hugging Face Job): base data +
    submitted cases, the same gate, the next version published to the same model store."""
    from .access import TokenUsers
    from .distributed import processes
    from .retraining import RetrainOptions
    from .service import MammoService
    from .store._hub import HubUnavailable

    if processes() > 1:
        raise ValueError("retrain runs as one process (on one GPU when present); a multi-process "
                         "launch is for `train` and `cv`")
    service = MammoService()
    try:
        try:
            user = TokenUsers(service.settings).user(service.settings.hf_token)
        except HubUnavailable as error:  # a local store needs no Hub: go on, said
            print(f"warning: {error} The retrain goes on as by nobody, which is refused where only "
                  "trainers may retrain.", file=sys.stderr)
            user = None
        options = RetrainOptions(args.epochs, args.image_size, not args.from_imagenet, args.seed)
        warning = service.film_size_warning(options)
        if warning:
            print(f"warning: {warning} The retrain runs as asked.", file=sys.stderr)

        def progress(fraction: float, message: str) -> None:
            print(f"{fraction:4.0%} {message}", file=sys.stderr)

        summary = service.retrain(options, user=user, progress=progress)
        # a Job's disk goes with it: the audit events must reach the dataset repo before it ends
        outbox = service.cases.outbox
        delivered = outbox is None or outbox.wait_until_delivered(timeout=300)
    finally:
        service.close()
    keys = ("promoted", "reason", "version", "rejected_id", "current_version", "cases_used", "cases_left_out",
            "cases_label_conflicts", "cases_in_label_conflict", "cases_corrected", "cases_withdrawn",
            "cases_withdrawn_copies", "cases_trained_on", "cases_repeated", "cases_disputed", "split",
            "paired_difference", "film_size_warning", "gate_best", "gate_best_specificity",
            "gate_best_sensitivity")
    print(json.dumps({**{k: summary[k] for k in keys}, "candidate": _brief(summary["candidate_metrics"]),
                      "current": _brief(summary["current_metrics"])}, indent=2))
    if not delivered:
        print(f"error: files are still waiting in the outbox {outbox.root} (the Hub did not take them "
              "within 5 minutes); they are sent when mammo next starts with this MAMMO_HOME",
              file=sys.stderr)
        return 1
    return 0


def _rounded(value):
    """A figure (or a list of them) to 3 decimals for printing; --json keeps full precision."""
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return round(value, 3) if isinstance(value, float) else value


def _brief(metrics: dict | None) -> dict | None:
    """The headline figures (None when nothing was held out to measure on)."""
    keys = ("n", "accuracy", "balanced_accuracy", "auc_macro", "auc_malignant",
            "auc_malignant_ci95", "sensitivity", "specificity")
    if metrics is None:
        return None
    # out of fold: the rates at cross-fitted thresholds too (the others are at one fitted on these films)
    fitted_apart = {k: metrics[k] for k in ("sensitivity_cross_fitted", "specificity_cross_fitted")
                    if k in metrics}
    return {**{k: metrics.get(k) for k in keys}, **fitted_apart}


def _films_learnt(members: Sequence[Predictor], examples: Sequence[Example], split: str) -> int | None:
    """How many of the evaluated films some member learnt from (:func:`~mammo.train.films_learnt`). A
    holdout was checked already (refused when it held any), so it is not decoded again."""
    from .train import films_learnt

    if split == "holdout":
        return 0 if any(member.learnt is not None for member in members) else None
    return films_learnt(members, examples)


def _evaluate(args: argparse.Namespace) -> int:
    from .baseline import evaluate_baseline
    from .data import SplitSpec, folder_examples, split_by_patient
    from .pipeline import refuse_learnt_holdout
    from .predict import Predictor
    from .train import ensemble_probabilities, ensemble_threshold, evaluate_probabilities

    members = [Predictor(resolve_model(model)) for model in args.model]
    predictor = members[0]
    if any(member.labels != predictor.labels for member in members):
        raise ModelError("an ensemble needs models with the same labels in the same order; these have "
                         + "; ".join(f"{member.model_dir}: {member.labels}" for member in members))
    examples = folder_examples(args.data)
    baseline = None
    if args.split != "all":
        spec = SplitSpec.from_model_config(predictor.config)
        if spec is None:
            raise ModelError("this model records no patient split of its data; use --split all")
        splits = {str(member.model_dir): SplitSpec.from_model_config(member.config) for member in members}
        if any(split != spec for split in splits.values()):
            recorded = "; ".join(f"{folder}: {split or 'none recorded'}" for folder, split in splits.items())
            raise ModelError(f"these models record different patient splits, so their --split films differ: "
                             f"{recorded}")
        parts = split_by_patient(examples, spec)
        examples = parts[args.split]
        if args.split == "holdout":
            for member in members:
                refuse_learnt_holdout(member.model_dir, str(member.model_dir), examples, str(args.data),
                                      member.min_side, "Evaluate it on the folder it was trained on, or on "
                                      "other films with --split all.")
        if args.split in ("val", "holdout"):  # the baseline learns from the films before this split
            learn = parts["train"] + (parts["val"] if args.split == "holdout" else [])
            baseline = evaluate_baseline(learn, examples, predictor.labels, predictor.preprocess,
                                         predictor.min_side)
    learnt = _films_learnt(members, examples, args.split)
    if learnt:
        print(f"warning: {learnt} of the {len(examples)} films are films the model learnt from (trained or "
              "validated on; by their pixels or as copies at another size or encoding): these figures are "
              "optimistic, not an estimate for new films (--split holdout scores only films it never saw)",
              file=sys.stderr)
    probs = ensemble_probabilities(members, examples)
    threshold = ensemble_threshold([member.threshold for member in members])
    metrics = evaluate_probabilities(examples, probs, predictor.labels, threshold)
    version = predictor.version if len(members) == 1 else " + ".join(str(m.version) for m in members)
    metrics = {"model_version": version, "split": args.split, **metrics, "baseline": baseline,
               "films_learnt": learnt}
    if len(members) > 1:
        metrics["ensemble"] = {"members": [str(member.model_dir) for member in members],
                               "rule": ENSEMBLE_RULE}
    if args.json:
        print(json.dumps(metrics))
    else:
        if len(members) > 1:
            print(f"{'ensemble':>18}: {metrics['model_version']} ({ENSEMBLE_RULE})")
        for key, value in _brief(metrics).items():
            print(f"{key:>18}: {_rounded(value)}")
        print(f"{'confusion_matrix':>18}: {metrics['confusion_matrix']} (rows true, cols predicted,"
              f" order {metrics['classes']})")
        if baseline:
            print(f"{'baseline AUC':>18}: {baseline['auc_malignant']} ({baseline['model']}, same films)")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from PIL import Image

    from .imaging import encode_png
    from .predict import Predictor
    from .views import flag_headline

    heatmaps = Path(args.heatmaps) if args.heatmaps else None
    if heatmaps is not None and heatmaps.exists() and not heatmaps.is_dir():  # not "[Errno 17] File exists"
        raise NotADirectoryError(f"--heatmaps names a folder to write the heat maps into; {heatmaps} is a "
                                 "file")
    if heatmaps is None and args.method is not None:  # it was ignored without a word (a CLI walk)
        print("note: --method chooses the heat map written with --heatmaps DIR; without it none is drawn",
              file=sys.stderr)
    predictor = Predictor(resolve_model(args.model))
    if heatmaps:
        heatmaps.mkdir(parents=True, exist_ok=True)
    failed = 0
    written: set[str] = set()  # a/x.png then b/x.png: x_heatmap.png then x_2_heatmap.png, none overwritten
    for image in args.images:
        try:
            result = predictor.predict(image, method=(args.method or DEFAULT_METHOD) if heatmaps else None)
        except MammoError as error:  # one unreadable file: said, and the others still predicted
            print(f"error: {image}: {error}", file=sys.stderr)
            failed += 1
            continue
        if heatmaps is not None and result.overlay is not None:
            name = stem = Path(image).stem  # the map at full resolution (16-bit), the overlay at display size
            for n in itertools.count(2):
                if stem not in written:
                    break
                stem = f"{name}_{n}"
            if stem != name:
                print(f"note: the heat map of {image} is {stem}_heatmap.png (an earlier image had its name)",
                      file=sys.stderr)
            written.add(stem)
            (heatmaps / f"{stem}_heatmap.png").write_bytes(encode_png(result.full_heatmap()))
            Image.fromarray(result.overlay).save(heatmaps / f"{stem}_overlay.png")
        details = {"image": image, **result.details()}
        if args.json:
            print(json.dumps(details))
        else:
            probs = ", ".join(f"{k} {v:.3f}" for k, v in result.probabilities.items())
            flag = flag_headline(details).removeprefix("### ")  # the verdict, not the most likely class
            print(f"{image}: {flag + '; ' if flag else ''}most likely {result.label} ({probs}); "
                  f"model {result.model_version}")
    if not args.json:
        print(DISCLAIMER, file=sys.stderr)
    return 1 if failed else 0


def _cases(args: argparse.Namespace) -> int:
    from .config import settings
    from .store import open_audit_log, open_case_store, open_registry

    if args.cases_command == "import":
        return _import_cases(args.dir, settings())
    labels = open_registry().config()["label_names"]  # the served model's
    store = open_case_store(labels)
    try:
        if args.cases_command in ("relabel", "withdraw"):
            receipt = (store.correct_label(args.case_id, args.label) if args.cases_command == "relabel"
                       else store.withdraw(args.case_id, args.reason))
            by = f"command line (cases {args.cases_command})"
            open_audit_log(settings(), store).record_amendment(receipt, by)
            print(json.dumps(receipt, indent=2))
        elif args.cases_command == "compact":
            limits = {key: value for key in ("small", "largest") if (value := getattr(args, key)) is not None}
            print(json.dumps(store.compact(**limits), indent=2))
        else:
            print(json.dumps({"counts": store.counts(), "recent": store.recent(args.n)}, indent=2))
    finally:
        store.close()
    return 0


def _import_cases(folder: Path, settings: Settings) -> int:
    """``cases import``: a labelled folder as one batch, through the app's own bulk upload
    (:meth:`MammoService.submit_many`), so that it is checked as the app checks one: a copy of a
    withdrawn case's film is refused (it went into the store past the command line: a CLI walk), and
    the receipt notes base films and images that do not look like a film. The command line is the
    store's owner: ``MAMMO_SUBMITTERS`` does not apply, and it starts no automatic retrain."""
    from dataclasses import replace

    from .data import folder_examples
    from .service import MammoService
    from .store.cases import METADATA_FIELDS

    examples = folder_examples(folder)
    service = MammoService(replace(settings, submitters=frozenset(), auto_retrain_every=0), fetch_logs=False)
    try:
        # metadata.csv's columns that are case fields (view, density, age, ...); the rest (a patient_id
        # above all) stay out of the store
        receipt = service.submit_many(
            ((e.source, e.label, {k: v for k, v in e.metadata.items() if k in METADATA_FIELDS})
             for e in examples), "command line (cases import)", skip_duplicates=True,
            names=[e.name for e in examples])
    finally:
        service.close()
    print(json.dumps(receipt, indent=2))
    return 0


def _models(args: argparse.Namespace) -> int:
    from .store import open_registry

    registry = open_registry()
    if args.models_command == "pull":
        version = registry.latest() if args.version == "latest" else args.version  # as --model takes it
        print(registry.pull(version, Path(args.out)))
    else:
        print(json.dumps(registry.versions(), indent=2))
    return 0


_DEFAULT = TRAINING_DEFAULTS  # the recipe's defaults, as TrainConfig has them


def _train_options(parser: argparse.ArgumentParser) -> None:
    """The options of a training recipe (``train`` and ``cv``)."""
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="imagefolder (<label>/<file>, optional metadata.csv); repeatable")
    parser.add_argument("--recipe", choices=RECIPES, default=_DEFAULT["recipe"],
                        help="film: whole-film classifier; patch: lesion-aware patch classifier "
                             "pooled over the film (needs lesion marks)")
    parser.add_argument("--init", default=_DEFAULT["init"],
                        help="imagenet | none | model folder | version (fine-tune)")
    parser.add_argument("--init-folds", type=Path, metavar="DIR",
                        help="cross-validation: start fold k from DIR/fold<k>, kept (--keep-models) by a "
                             "cross-validation of the same films and folds, instead of --init")
    parser.add_argument("--arch", default=_DEFAULT["arch"], help="timm architecture")
    parser.add_argument("--image-size", type=int, default=_DEFAULT["image_size"], help="film side in pixels")
    parser.add_argument("--patch-size", type=int, default=_DEFAULT["patch_size"],
                        help="patch side (patch recipe)")
    parser.add_argument("--top-k", type=int, default=_DEFAULT["top_k"],
                        help="patch positions pooled (patch recipe)")
    parser.add_argument("--min-coverage", type=float, default=_DEFAULT["min_coverage"],
                        help="share of a pooled patch inside the breast (patch recipe)")
    parser.add_argument("--hard-negatives", type=int, default=_DEFAULT["hard_negatives"],
                        help="mined background patches per film per epoch (patch recipe)")
    parser.add_argument("--epochs", type=int, default=_DEFAULT["epochs"],
                        help="training epochs (patch recipe: of patches; film recipe: of whole films)")
    parser.add_argument("--film-epochs", type=int, default=_DEFAULT["film_epochs"],
                        help="patch recipe: epochs of whole-film fine-tuning after the patch epochs")
    parser.add_argument("--film-lr", type=float, default=_DEFAULT["film_lr"],
                        help="learning rate of the film epochs")
    parser.add_argument("--film-batch-size", type=int, default=_DEFAULT["film_batch_size"],
                        help="films per batch of the film epochs")
    parser.add_argument("--batch-size", type=int, default=_DEFAULT["batch_size"],
                        help="images (patches) per batch and process")
    parser.add_argument("--grad-accum", type=int, default=_DEFAULT["grad_accum"],
                        help="batches per optimiser step (gradient accumulation)")
    parser.add_argument("--lr", type=float, default=_DEFAULT["lr"], help="learning rate (AdamW)")
    parser.add_argument("--weight-decay", type=float, default=_DEFAULT["weight_decay"],
                        help="AdamW weight decay")
    parser.add_argument("--patience", type=int, default=_DEFAULT["patience"],
                        help="early stopping on validation AUC (film recipe with validation; 0: off)")
    parser.add_argument("--seed", type=int, default=_DEFAULT["seed"],
                        help="seed of the split, folds and training")
    parser.add_argument("--workers", type=int, default=1, help="folds trained at once (processes)")
    parser.add_argument("--no-crop", action="store_true", help="do not crop to the breast")
    parser.add_argument("--no-orient", action="store_true", help="do not flip breasts to the left")
    parser.add_argument("--no-vertical-flip", action="store_true",
                        help="no random vertical flips in training (ultrasound: up is the skin side)")
    parser.add_argument("--min-side", type=int, default=_DEFAULT["min_side"],
                        help="smallest accepted image side")
    parser.add_argument("--test-time-mirror", choices=["horizontal", "vertical"],
                        help="score each image as the mean of its own and its mirror image's scores "
                             "(also in cross-validation, evaluation and the app); training is unchanged")


def _withdrawal_reason(given: str) -> str:
    """A withdrawal's reason as the list spells it (any case and spacing), or a usage error naming them."""
    listed = listed_reason(given)
    if listed is None:
        raise argparse.ArgumentTypeError(f"{given!r} is not one of: {'; '.join(WITHDRAWAL_REASONS)}")
    return listed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mammo", description=__doc__,
                                     epilog=DISCLAIMER)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model folder on imagefolders")
    _train_options(train)
    train.add_argument("--val", type=Path, help="validation imagefolder (default: patient split)")
    train.add_argument("--val-fraction", type=float, default=0.15)
    train.add_argument("--holdout-fraction", type=float, default=0.15)
    train.add_argument("--cv", type=int, default=0, metavar="K",
                       help="cross-validate K folds (train + validation patients) first; the final "
                            "model gets the out-of-fold calibration and threshold")
    train.add_argument("--keep-models", type=Path,
                       help="with --cv: folder for each fold's model and the out-of-fold predictions")
    train.add_argument("--cv-from", type=Path, metavar="CV_JSON",
                       help="instead of --cv: the cv.json of a cross-validation of the same recipe on the "
                            "same training films (waits for it while it is still being written)")
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.set_defaults(run=_train, argv=None)

    cv = sub.add_parser("cv", help="patient-grouped cross-validation of a training recipe")
    _train_options(cv)
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument("--leave-out-holdout", action="store_true",
                    help="cross-validate only the training and validation patients of train's default "
                    "split (same --seed), as train --cv does: the held-out patients stay unseen, and the "
                    "cv.json can feed train --cv-from (default: every film of --data)")
    cv.add_argument("--json", action="store_true", help="print one JSON object")
    cv.add_argument("--keep-models", type=Path, help="folder to save each fold's model in")
    cv.add_argument("--oof-out", type=Path, help="write the summary with every film's out-of-fold "
                    "probabilities (what --keep-models DIR writes as DIR/cv.json) here")
    cv.set_defaults(run=_cv)

    evaluate = sub.add_parser("evaluate", help="metrics of a model on a labelled imagefolder")
    evaluate.add_argument("--model", required=True, action="append",
                          help="model folder or version (v1, latest); repeat it to score an ensemble: "
                               "each film's probabilities averaged over the models")
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--split", choices=("all", "train", "val", "holdout"), default="all",
                          help="evaluate on the model's recorded patient split of --data")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(run=_evaluate)

    predict = sub.add_parser("predict", help="predict images")
    predict.add_argument("--model", default="latest", help="model folder or version")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.add_argument("--heatmaps", help="folder for each image's heat map at full resolution "
                         "(<name>_heatmap.png, 16-bit) and overlay at display size (<name>_overlay.png)")
    predict.add_argument("--method", choices=HEATMAP_METHODS,
                         help=f"heat-map method, with --heatmaps (default {DEFAULT_METHOD}; Lesion map falls "
                         "back to Grad-CAM on models without one)")
    predict.set_defaults(run=_predict)

    cases = sub.add_parser("cases", help="the case store")
    cases_sub = cases.add_subparsers(dest="cases_command", required=True)
    imp = cases_sub.add_parser("import", help="bulk-append a labelled imagefolder: images stored "
                               "before are skipped (listed under 'skipped'); the columns of its metadata.csv "
                               "that are case metadata fields (the Submit tab's) are kept, others "
                               "(patient_id, ...) are not")
    imp.add_argument("dir", type=Path)
    listing = cases_sub.add_parser("list", help="counts per label and recent cases")
    listing.add_argument("-n", type=int, default=10)
    relabel = cases_sub.add_parser("relabel", help="correct a stored case's confirmed label (its shard is "
                                   "kept; the correction is stored beside it and audited)")
    relabel.add_argument("case_id", help="the case id, as in its receipt")
    relabel.add_argument("label", help="its correct label (one of the served model's)")
    withdraw = cases_sub.add_parser("withdraw", help="withdraw a stored case: left out of counts, lists and "
                                    "every retrain from now on (its shard, and the image in it, is kept: "
                                    "see docs/architecture.md to erase it); audited")
    withdraw.add_argument("case_id", help="the case id, as in its receipt")
    withdraw.add_argument("reason", type=_withdrawal_reason,
                          help=f"why (quoted; any case): one of {'; '.join(WITHDRAWAL_REASONS)}")
    compact = cases_sub.add_parser("compact", help="merge small shards (one per submission) into big ones")
    compact.add_argument("--small", type=int, help="merge shards of fewer cases than this "
                         "(default: mammo.store.cases.compaction.SMALL_SHARD_ROWS)")
    compact.add_argument("--largest", type=int, help="the most cases in a merged shard "
                         "(default: mammo.store.cases.compaction.MERGED_SHARD_ROWS)")
    cases.set_defaults(run=_cases)

    retrain = sub.add_parser("retrain", help="the app's retrain (base data + cases, gate, publish) here",
                             description=_retrain.__doc__, epilog="The stores, base data and token come "
                             "from the same environment variables as the app's (MAMMO_HOME, "
                             "MAMMO_DATASET_REPO, MAMMO_MODEL_REPO, MAMMO_BASE_DATA, HF_TOKEN); "
                             "MAMMO_TRAINERS applies to the token's user.")
    retrain.add_argument("--epochs", type=int, default=5, help="training epochs, as the Retrain tab's")
    retrain.add_argument("--image-size", type=int, help="model input side (default: the served model's)")
    retrain.add_argument("--from-imagenet", action="store_true",
                         help="start from ImageNet weights instead of fine-tuning the served version")
    retrain.add_argument("--seed", type=int, default=0)
    retrain.set_defaults(run=_retrain)

    models = sub.add_parser("models", help="the model registry")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="versions with metrics and dates")
    pull = models_sub.add_parser("pull", help="download a version's files")
    pull.add_argument("version", help="a version (v1, v2, ...) or latest")
    pull.add_argument("--out", required=True)
    models.set_defaults(run=_models)
    return parser


_STORE_COMMANDS = ("cases", "models")  # they only read and write the stores: no torch


@said_in_one_line
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; errors print one clear line and exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = _parser().parse_args(argv)
    if args.command not in _STORE_COMMANDS:
        import torch

        torch.set_num_threads(1)
    if args.command == "train":
        args.argv = list(argv) if argv is not None else None
    return args.run(args)
