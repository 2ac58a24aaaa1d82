"""The Hub model card (``README.md``) of a model version, rendered from its ``config.json``.

Data-driven: every number and name comes from the config; a missing field is shown as
"not recorded", never guessed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from huggingface_hub import EvalResult, ModelCardData

from .config import DISCLAIMER, HUB_DATASET_PREFIX, data_name
from .metrics import (
    FEWEST_FOR_AN_INTERVAL,
    NESTED_CROSS_FITTING,
    ece_chance_said,
    resampled_patients,
    too_few_for_an_interval,
)

__all__ = ["NOT_RECORDED", "eval_results", "render_model_card"]

NOT_RECORDED = "not recorded"

_TAGS = ["image-classification", "mammography", "timm", "medical-imaging", "research-only"]
# (key in the metrics, model-index metric type, its name on the Hub)
_INDEXED_METRICS = (
    ("auc_malignant", "roc_auc", "AUC malignant vs rest"),
    ("auc_abnormal", "roc_auc", "AUC abnormal vs normal"),
    ("balanced_accuracy", "balanced_accuracy", "balanced accuracy"),
    ("accuracy", "accuracy", "accuracy"),
    ("ece_malignant", "ece", "expected calibration error of P(malignant)"),
)

_INTENDED_USE = """## Intended use

Research and education: studying how an image classifier behaves on mammograms, teaching, and
trying the retraining loop of mammo. It predicts one of the labels below
for a whole mammogram and shows a Grad-CAM heat map of the regions that drove the prediction.
It is **not** intended for diagnosis, screening, triage or any decision about a patient."""

_LIMITATIONS = """## Limitations

- Small data: the counts above are small (mini-MIAS holds 322 films in all), so every metric
  is uncertain (see the confidence interval) and the model will not generalise reliably.
- The base data, mini-MIAS, are digitised screen-film mammograms (MLO views, published 1994),
  not full-field digital mammograms (FFDM) or tomosynthesis: images from today's machines look
  different and the model has not been tested on them.
- Images of the same patient are kept together in one split (patients held out), but the
  evaluation set is small and from the same source as the training data: no external validation.
- Not validated clinically, not cleared or approved by any regulator. Outputs can be wrong,
  including confidently wrong; the heat map shows what the model looked at, not where a lesion is.
- Cases submitted through the app are labelled by their submitters and are not independently
  verified."""

_CITATION = """## Citation

The base data are the mini-MIAS database (MIAS licence: research use only, cite the database):

J Suckling et al (1994) "The Mammographic Image Analysis Society Digital Mammogram Database",
Excerpta Medica, International Congress Series 1069, pp375-378."""


def _num(value: object, digits: int = 3) -> str:
    """A number rounded for display, or "not recorded"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NOT_RECORDED
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def _text(value: object) -> str:
    """A value as inline text, or "not recorded" when missing or empty."""
    if value is None or value == "" or value == [] or value == {}:
        return NOT_RECORDED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _split_name(split: object) -> str:
    """The evaluation split's name (and description), from a string or a ``{name, description}``."""
    if isinstance(split, dict):
        name, description = split.get("name"), split.get("description")
        if name and description:
            return f"{name}: {description}"
        return _text(name or description)
    return _text(split)


def _evaluation_split(mammo: dict) -> str:
    """The evaluation split in words; for a version a retrain's gate promoted, that the same held-out
    films chose it (candidates that scored lower there were rejected), so its figure there is optimistic."""
    said = _split_name(mammo.get("split"))
    report = mammo.get("report") or {}
    promoted = report.get("promoted") is True and not report.get("rollback_of")  # not a rejection, a rollback
    if promoted and (mammo.get("split") or {}).get("name") == "holdout":
        said += ("; these same films also chose this version: the promotion gate compared it with the "
                 "version it replaced on them, and candidates that scored lower were rejected, so after "
                 "several retrains the figure here is somewhat optimistic")
    return said


def _ci(metrics: dict) -> str:
    ci = metrics.get("auc_malignant_ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f"{_num(ci[0])}–{_num(ci[1])}"
    if "auc_malignant_ci95" in metrics and metrics.get("auc_malignant") is not None:
        return f"none ({too_few_for_an_interval(metrics)})"
    return NOT_RECORDED


def _by_patient(metrics: dict) -> str:
    """', by patient' for the intervals of an evaluation whose bootstrap drew whole patients, else ''
    (v1-v3's drew films)."""
    return ", by patient" if resampled_patients(metrics) else ""


def _threshold(mammo: dict, metrics: dict) -> object:
    return mammo.get("threshold", metrics.get("threshold"))


def _labels(config: dict) -> list[str]:
    names = config.get("label_names") or config.get("pretrained_cfg", {}).get("label_names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    return [str(n) for n in names or []]


def _intended_use(mammo: dict) -> str:
    if ((mammo.get("head") or {}).get("kind")) != "patch":
        return _INTENDED_USE
    return _INTENDED_USE.replace(
        "shows a Grad-CAM heat map of the regions that drove the prediction.",
        "shows a lesion map (the patch network's probability of a lesion at each place of the "
        "film) or a Grad-CAM heat map.")


def _patch_stage_text(training: dict, cv: dict) -> str:
    if not training.get("epochs") and training.get("init") in ("imagenet", "none", None):
        return ("1. **Patch classifier.** None: no patch epochs; the network starts from "
                f"`{training.get('init')}` weights.\n")
    if not training.get("epochs"):  # the patch stage came with the network it started from
        folds = (f" Its cross-validation started each fold from the fold models of that model's own "
                 f"cross-validation (`{cv['init_folds']}`), so the figures below cover both stages."
                 if cv.get("init_folds") else "")
        return ("1. **Patch classifier.** The patch network this model started from "
                f"(`{training.get('init')}`, trained as its own card describes); no further patch "
                f"epochs.{folds}\n")
    return ("1. **Patch classifier.** The network classifies "
            f"{_num(training.get('patch_size'))} px patches of films prepared at "
            f"{_num(training.get('image_size'))} px (normal tissue / benign / malignant): patches "
            "centred on the marked lesions (random shift, zoom 0.8-1.25, any rotation, mirror, "
            "brightness/contrast) and background patches inside the breast of normal films and away "
            "from the marked lesions of abnormal films, new ones every epoch, "
            f"{_num(training.get('epochs'))} epochs (fixed; no early stopping).\n")


def _film_stage_text(training: dict) -> str:
    if not training.get("film_epochs"):
        return ""
    return ("3. **Whole-film fine-tuning.** The pooled network is then trained on whole films for "
            f"{_num(training.get('film_epochs'))} epochs (fixed; learning rate "
            f"{training.get('film_lr')}, {_num(training.get('film_batch_size'))} films per batch; "
            f"{_film_augmentation(training)}): the class-weighted loss of the uncalibrated film scores "
            "reaches the network through the top-k pooling. Only its deeper layers learn (for timm's "
            "EfficientNets, from the fifth stage of blocks on); the stem, the first four stages and every "
            "batch-norm statistic stay as the patch stage left them (Shen et al. 2019 fine-tune a "
            "patch network on whole images the same way).\n")


# what the whole-film fine-tuning of models trained before its augmentation was recorded (v3) did
_FILM_AUGMENTATION_BEFORE_RECORDED = "vertical flips, rotation up to 10 degrees, brightness/contrast"


def _film_augmentation(training: dict) -> str:
    return training.get("film_augmentation") or _FILM_AUGMENTATION_BEFORE_RECORDED


def _recipe_section(mammo: dict) -> str | None:
    head = mammo.get("head") or {}
    training = mammo.get("training") or {}
    if head.get("kind") != "patch":
        return None
    calibration_step = 4 if training.get("film_epochs") else 3
    return (
        "## Recipe: lesion-aware, two stages\n\n"
        + _patch_stage_text(training, mammo.get("cv") or {})
        + "2. **Whole film.** The patch network runs fully convolutionally over the prepared film: "
        "its last feature map is averaged over patch-sized windows and its classifier applied at "
        "every position. Each lesion class's film score is the mean of its top "
        f"{_num(head.get('top_k'))} patch probabilities (as Shen et al. 2019, Sci Rep 9:12495, pool "
        "a patch network).\n"
        + _film_stage_text(training)
        + f"{calibration_step}. **Calibration.** A multinomial logistic regression maps the two film "
        "scores (log-odds) to the three class probabilities, fitted on out-of-fold predictions (see "
        "Cross-validation): the probabilities shown are calibrated.\n\n"
        "Films with a finding but no marked coordinates give no patches; they count as whole-film "
        "examples in the calibration. The weights file holds the patch network only: loaded with "
        "timm alone it is a *patch* classifier; `mammo` adds the pooling and calibration recorded "
        "in `config.json` (`mammo.head`)."
    )


def _reliability_table(bins: list) -> str:
    """The reliability diagram's figures as a table: predicted vs observed frequency per bin (it was
    drawn in ASCII art, which a screen reader reads out character by character)."""
    return _table(("P(malignant) bin", "films", "mean predicted", "observed"),
                  [(f"{row['low']:.1f}–{row['high']:.1f}", str(row["n"]), f"{row['mean_predicted']:.3f}",
                    f"{row['observed']:.3f}") for row in bins])


def _grouped_by(mammo: dict) -> str:
    """What the split and folds kept together: patients, or (data without patient ids) images."""
    return "image (not every image has a patient id)" if (mammo.get("split") or {}).get("by") == "image" \
        else "patient"


_OR_ITS_PATIENT = " (nor on its patient's other films)"
# how a cross-validation recorded before NESTED_CROSS_FITTING (v2, v3) fitted each fold's threshold
_NOT_NESTED = ("its calibration fitted on the other folds and its threshold picked on their calibrated "
               "probabilities, whose calibration had learnt this fold's labels (somewhat optimistic; "
               "cross-validations now fit both on the other folds alone)")


def _nested(cv: dict) -> bool:
    """Whether a cross-validation fitted each fold's calibration and threshold on the other folds alone."""
    return cv.get("cross_fitting") == NESTED_CROSS_FITTING


def _cv_section(mammo: dict) -> str | None:
    cv = mammo.get("cv")
    if not cv:
        return None
    folds = cv.get("folds") or []
    rows = [(str(f.get("fold")), _num(f.get("n")), _num(f.get("auc_malignant")),
             "–".join(_num(v) for v in f.get("auc_malignant_ci95") or []) or NOT_RECORDED,
             _num(f.get("auc_macro"))) for f in folds]
    abnormal = cv.get("auc_abnormal") or {}
    calibration = cv.get("calibration") or {}
    abnormal_ci = "–".join(_num(v) for v in abnormal.get("ci95") or []) or NOT_RECORDED
    parts = [
        _metrics_section(cv, "## Cross-validation (the estimate to quote)",
                         f"{_num(cv.get('n_folds'))}-fold cross-validation by {_grouped_by(mammo)}, "
                         "stratified by label; every film scored once by the model that did not train on it"
                         f"{_OR_ITS_PATIENT if _grouped_by(mammo) == 'patient' else ''}, "
                         + ("its calibration and its threshold fitted on the other folds alone"
                            if _nested(cv) else _NOT_NESTED)
                         + "; the shipped calibration and threshold are fitted on all of them"),
        f"Abnormal (benign or malignant) vs normal AUC: {_num(abnormal.get('auc'))} "
        f"(95% CI {abnormal_ci}).",
        "Per fold:\n\n" + _table(("fold", "films", "AUC malignant", f"95% CI{_by_patient(cv)}", "AUC macro"),
                                  rows),
        f"What is optimistic: {cv.get('optimistic', NOT_RECORDED)}",
        "### Calibration\n\n"
        f"Expected calibration error of P(malignant), out of fold: **{_num(cv.get('ece_malignant'))}** "
        f"calibrated, {_num(calibration.get('ece_malignant_uncalibrated'))} before calibration "
        f"(10 equal-width bins). Method: {calibration.get('method', NOT_RECORDED)}.\n\n"
        "Reliability diagram (observed share of malignant films per bin of predicted P(malignant); "
        "a calibrated model has observed = predicted):\n\n"
        + _reliability_table(cv.get("reliability") or []),
    ]
    return "\n\n".join(parts)


def _baseline_section(mammo: dict) -> str | None:
    """The CNN beside the logistic-regression baseline on the same films (holdout and/or folds)."""
    pairs = []
    if mammo.get("metrics") and mammo.get("baseline"):
        pairs.append((_split_name(mammo.get("split")), mammo["metrics"], mammo["baseline"]))
    cv = mammo.get("cv") or {}
    if cv.get("baseline") and mammo.get("baseline") != cv["baseline"]:
        pairs.append(("cross-validation, out of fold (same folds)", cv, cv["baseline"]))
    if not pairs:
        return None
    rows = []
    for split, cnn, baseline in pairs:
        for name, metrics in (("this model (CNN)", cnn), ("baseline", baseline)):
            abnormal = (metrics.get("auc_abnormal") or {}).get("auc")
            interval = _ci(metrics) + (_by_patient(metrics) if metrics.get("auc_malignant_ci95") else "")
            rows.append((split, name, _num(metrics.get("n")), _num(metrics.get("auc_malignant")),
                         interval, _num(abnormal), _num(metrics.get("balanced_accuracy"))))
    model = next(b for _, _, b in pairs).get("model", NOT_RECORDED)
    return ("## Baseline beside the CNN\n\n"
            f"What the deep model adds over simple image features: a {model} (fixed settings, "
            "nothing tuned), trained and scored on exactly the same films as this model.\n\n"
            + _table(("evaluated on", "model", "films", "AUC malignant", "95% CI", "AUC abnormal",
                      "balanced accuracy"), rows))


def _auc_text(value: object, by: str = "", sides: tuple[int, int] | None = None) -> str:
    """'0.712 (0.60–0.81)' from ``{auc, ci95}``, ``by`` after the interval (', by patient'); 'n/a'
    when the subgroup lacks a class. ``sides``: its films of each class, where known: an interval
    recorded on fewer than FEWEST_FOR_AN_INTERVAL of either (v2's and v3's were) is not shown."""
    if not isinstance(value, dict):
        return "n/a (one class only)"
    ci = value.get("ci95") or []
    if ci and sides and min(sides) < FEWEST_FOR_AN_INTERVAL:
        fewest = min(sides)
        return f"{_num(value.get('auc'))} (no interval: {fewest} film{'' if fewest == 1 else 's'} of a class)"
    return _num(value.get("auc")) + (f" ({'–'.join(_num(v) for v in ci)}{by})" if ci else "")


def _sides(figures: dict, label: str) -> tuple[int, int] | None:
    """A subgroup's films of ``label`` and of the rest, from its counts; None where not recorded."""
    counts, n = figures.get("counts") or {}, figures.get("n")
    return (counts[label], n - counts[label]) if label in counts and isinstance(n, int) else None


def _subgroups_section(mammo: dict) -> str | None:
    """Figures per tissue type / density / age band for each evaluation that records them."""
    evaluations = [(_split_name(mammo.get("split")), mammo.get("metrics") or {})]
    if (mammo.get("cv") or {}).get("subgroups") and mammo.get("metrics") != mammo.get("cv"):
        evaluations.append(("cross-validation, out of fold", mammo["cv"]))
    rows = []
    for split, metrics in evaluations:
        for grouping, groups in (metrics.get("subgroups") or {}).items():
            for name, figures in groups.items():
                counts = "/".join(str(n) for n in (figures.get("counts") or {}).values())
                by = _by_patient(metrics)  # a subgroup's intervals drew the units its evaluation's did
                rows.append((split, grouping, name, f"{figures.get('n')} ({counts})",
                             _auc_text(figures.get("auc_malignant"), by, _sides(figures, "malignant")),
                             _auc_text(figures.get("auc_abnormal"), by, _sides(figures, "normal")),
                             f"{_num(figures.get('sensitivity'))} / {_num(figures.get('specificity'))}"))
    if not rows:
        return None
    order = "/".join(next(iter(evaluations))[1].get("classes") or [])
    return ("## Subgroups: where it does worse\n\n"
            "The same evaluations split by the films' metadata (mini-MIAS records the tissue type; "
            "submitted cases may record density and age). Subgroups are small: read the intervals, "
            "not the point estimates; no interval is given on fewer than "
            f"{FEWEST_FOR_AN_INTERVAL} films of a class. Sensitivity and specificity are at the version's "
            "one operating threshold on a held-out split; out of fold, "
            + ("each film is called at the threshold fitted on the other folds.\n\n"
               if _nested(mammo.get("cv") or {}) else
               "at the one threshold fitted on these same out-of-fold predictions (optimistic: it was "
               "picked on them).\n\n")
            + _table(("evaluated on", "by", "subgroup", f"films ({order})", "AUC malignant (95% CI)",
                      "AUC abnormal (95% CI)", "sensitivity / specificity"), rows))


def _title(mammo: dict) -> str:
    version = mammo.get("version") or "version not recorded"
    return f"# mammo mammogram classifier — {version}\n\n> **Disclaimer.** {DISCLAIMER}"


def _labels_section(config: dict) -> str:
    labels = _labels(config)
    listed = ", ".join(f"`{name}`" for name in labels) if labels else NOT_RECORDED
    return (
        "## Labels\n\n"
        f"Output classes, in the order of the model's outputs: {listed}. The model gives a "
        'probability for each; "malignant vs rest" below uses the malignant probability.'
    )


def _model_section(config: dict) -> str:
    cfg = config.get("pretrained_cfg") or {}
    arch = config.get("architecture")
    rows = [
        ("Architecture", f"`{arch}` (timm)" if arch else NOT_RECORDED),
        ("Classes", _num(config.get("num_classes"))),
        ("Features", _num(config.get("num_features"))),
        ("Input size (channels, height, width)", _text(cfg.get("input_size"))),
        ("Normalisation mean / std", f"{_text(cfg.get('mean'))} / {_text(cfg.get('std'))}"),
    ]
    return (
        "## Model\n\n"
        + _table(("item", "value"), rows)
        + "\n\nLoad it with timm (the latest version is on `main`; each version is a tag):\n\n"
        "```python\nimport timm\n"
        'model = timm.create_model("hf-hub:<this repo>", pretrained=True)\n```\n\n'
        "It expects grey images prepared as in Preprocessing below and normalised with the mean "
        "and std above."
    )


def _preprocess_section(mammo: dict) -> str:
    pre = mammo.get("preprocess") or {}
    rows = [
        ("Crop to the breast region", _text(pre.get("crop"))),
        ("Flip so the breast is on the left", _text(pre.get("orient"))),
        ("Model input side (pixels)", _num(pre.get("image_size"))),
    ]
    mirror = (mammo.get("head") or {}).get("mirror")
    return (
        "## Preprocessing\n\nImages are read as grey, then prepared as below (the same at "
        "training and prediction):\n\n" + _table(("step", "setting"), rows)
        + (f"\n\n**Test-time mirror**: at prediction, and in every figure of this card, each image is "
           f"scored as the mean of its own and its {mirror} mirror image's scores (then calibrated); "
           "training saw each image as it is." if mirror else "")
    )


def _ece_rows(metrics: dict) -> list[tuple[str, str]]:
    """The calibration error of P(malignant), with what chance alone gives on these films; none where
    not recorded."""
    if metrics.get("ece_malignant") is None:
        return []
    return [("Calibration error (ECE) of P(malignant)",
             _num(metrics["ece_malignant"]) + ece_chance_said(metrics))]


def _rate_rows(metrics: dict) -> list[tuple[str, str]]:
    """Sensitivity and specificity for malignant: at the threshold; out of fold, each film at the
    threshold fitted on the other folds, and at the one fitted on these very predictions apart, as
    optimistic (it was picked to reach 90% sensitivity on them)."""
    if "sensitivity_cross_fitted" not in metrics:
        return [("Sensitivity (malignant, at the threshold)", _num(metrics.get("sensitivity"))),
                ("Specificity (malignant, at the threshold)", _num(metrics.get("specificity")))]
    each = ("each film at the threshold fitted on the other folds" if _nested(metrics) else
            "each film at a threshold picked on the other folds, slightly optimistic: see above")
    return [(f"Sensitivity (malignant, {each})", _num(metrics.get("sensitivity_cross_fitted"))),
            (f"Specificity (malignant, {each})", _num(metrics.get("specificity_cross_fitted"))),
            ("Sensitivity at the threshold fitted on these same predictions (optimistic)",
             _num(metrics.get("sensitivity"))),
            ("Specificity at the threshold fitted on these same predictions (optimistic)",
             _num(metrics.get("specificity")))]


def _interval_text(by_patients: bool, n_text: str) -> str:
    """How the AUC's interval was drawn: over patients (their films together) or over cases, as
    versions recorded before intervals resampled patients did."""
    if by_patients:
        return ("The 95% confidence interval of the malignant-vs-rest AUC is a percentile bootstrap over "
                f"patients ({n_text} films): whole patients are resampled with replacement, their films "
                "together (one woman's films are not independent), and the AUC recomputed")
    return ("The 95% confidence interval of the malignant-vs-rest AUC is a percentile bootstrap over "
            f"cases ({n_text}): cases are resampled with replacement and the AUC recomputed")


def _metrics_section(metrics: dict, heading: str, split: str) -> str:
    """One metrics block: table, CI note, per-class table, confusion matrix."""
    n = metrics.get("n")
    rows = [
        ("Cases (n)", _num(n)),
        ("Accuracy", _num(metrics.get("accuracy"))),
        ("Balanced accuracy", _num(metrics.get("balanced_accuracy"))),
        ("AUC, macro one-vs-rest", _num(metrics.get("auc_macro"))),
        ("AUC, malignant vs rest", _num(metrics.get("auc_malignant"))),
        ("AUC malignant vs rest, 95% CI", _ci(metrics)),
        *_rate_rows(metrics),
        *_ece_rows(metrics),
    ]
    n_text = f"n = {n}" if isinstance(n, int) else "n not recorded"
    parts = [
        heading,
        f"Evaluation split: {split}.",
        _table(("metric", "value"), rows),
        _interval_text(isinstance(n, int) and resampled_patients(metrics), n_text) + "; none is "
        f"given with fewer than {FEWEST_FOR_AN_INTERVAL} malignant films or {FEWEST_FOR_AN_INTERVAL} "
        "others, or, where patients are resampled, films of that few patients (its percentiles would "
        "be degenerate). With "
        "this few cases, and fewer malignant ones, the interval is wide: differences between "
        "versions that fall inside it are not evidence that one version is better.",
    ]
    per_class = metrics.get("per_class")
    if isinstance(per_class, dict) and per_class:
        rows = [
            (
                f"`{name}`",
                *(_num(v.get(k)) for k in ("precision", "recall", "f1")),
                _num(v.get("support")),
            )
            for name, v in per_class.items()
        ]
        parts += ["Per class:", _table(("class", "precision", "recall", "F1", "support"), rows)]
    else:
        parts.append(f"Per-class precision and recall: {NOT_RECORDED}.")
    parts.append(_confusion(metrics))
    return "\n\n".join(parts)


def _confusion(metrics: dict) -> str:
    matrix, classes = metrics.get("confusion_matrix"), metrics.get("classes")
    if not matrix or not classes or len(matrix) != len(classes):
        return f"Confusion matrix: {NOT_RECORDED}."
    rows = [(f"**{name}**", *(str(v) for v in row)) for name, row in zip(classes, matrix, strict=True)]
    header = ("true \\ predicted", *classes)
    return "Confusion matrix (rows: true label, columns: predicted):\n\n" + _table(header, rows)


def _threshold_section(mammo: dict) -> str:
    threshold = _threshold(mammo, mammo.get("metrics") or {})
    if not isinstance(threshold, int | float) or isinstance(threshold, bool):
        return f"## Operating threshold\n\nThe operating threshold was {NOT_RECORDED}."
    return (
        "## Operating threshold\n\n"
        f"A case is flagged malignant when P(malignant) >= **{threshold:.3f}**. The sensitivity "
        "and specificity above are measured at this threshold; a lower threshold catches more "
        "malignant cases at the cost of more false alarms. The reported label is the most "
        "probable class, which can differ from the flag." + _seen_validation_note(mammo)
        + _threshold_not_on_served_note(mammo)
    )


def _threshold_not_on_served_note(mammo: dict) -> str:
    """Says so when a cross-validated version's threshold was picked on its cross-fitted out-of-fold
    probabilities (v2, v3), not on those of the calibration it serves: its rule need not hold of them."""
    cv = mammo.get("cv")
    if not cv or _nested(cv):
        return ""
    rule = mammo.get("threshold_rule") or cv.get("threshold_rule") or "not recorded"
    return ("\n\nThis threshold was picked on the cross-fitted out-of-fold probabilities, not on those of "
            "the calibration this model serves (cross-validations pick it on the served calibration's "
            f'now): its rule ("{rule}") need not hold of the probabilities shown.')


def _seen_validation_note(mammo: dict) -> str:
    """Says so when the validation films that fitted the calibration and threshold were not new to
    the starting weights (e.g. a retrain from a version trained on them)."""
    seen = (mammo.get("data") or {}).get("val_learnt_by_init", 0)
    init = (mammo.get("training") or {}).get("init")
    if seen == 0 or not mammo.get("val_metrics"):
        return ""
    if seen is None:
        return (f"\n\nThe starting weights (`{init}`) record no list of the films they learnt from, so "
                "whether the validation films that fitted the calibration and this threshold were new "
                "to them could not be checked.")
    return (f"\n\n**Optimistic**: the calibration and this threshold were fitted on {seen} validation "
            f"films that the starting weights (`{init}`) had already learnt from, so the "
            "validation figures are flattering and on new films the sensitivity at this threshold is "
            "likely lower. The held-out evaluation above is not affected.")


def _data_section(mammo: dict) -> str:
    data = mammo.get("data") or {}
    sources = data.get("sources")
    listed = "\n".join(f"- {s}" for s in sources) if sources else f"- {NOT_RECORDED}"
    rows = [
        ("Training images", _num(data.get("n_train"))),
        ("Validation images", _num(data.get("n_val"))),
        ("Submitted cases used", _num(data.get("n_cases"))),
    ]
    # the submitted cases a retrain left out, each kind shown when there are any (disputed ones are
    # counted: the config lists their ids, for a clinician to correct their labels)
    rows += [(label, _num(len(left) if isinstance(left, list) else left))
             for key, label in _LEFT_OUT_ROWS if (left := data.get(key))]
    counts = data.get("counts")
    if isinstance(counts, dict) and counts:
        rows += [(f"Images labelled `{label}`", _num(n)) for label, n in counts.items()]
    else:
        rows.append(("Images per label", NOT_RECORDED))
    return "## Training data\n\nSources:\n\n" + listed + "\n\n" + _table(("item", "count"), rows)


def _lineage_section(mammo: dict) -> str:
    rows = [
        ("Version", _text(mammo.get("version"))),
        ("Parent version", _text(mammo.get("parent")) if "parent" in mammo else NOT_RECORDED),
        ("Created (UTC)", _text(mammo.get("created_at"))),
        ("Published (UTC)", _text(mammo.get("published_at"))),
    ]
    if "parent" in mammo and mammo["parent"] is None:
        rows[1] = ("Parent version", "none (first version)")
    command = mammo.get("command")
    shown = f"```\n{command}\n```" if command else NOT_RECORDED
    return "## Version history\n\n" + _table(("item", "value"), rows) + "\n\nCommand:\n\n" + shown


def _report_section(mammo: dict) -> str | None:
    report = mammo.get("report")
    if not report:
        return None
    reason = report.get("reason") if isinstance(report, dict) else None
    lead = f"{reason}\n\n" if reason else ""
    body = json.dumps(_without_curves(report), indent=2, sort_keys=True, default=str)
    return (
        f"## Promotion report\n\n{lead}```json\n{body}\n```\n\n"
        "ROC curves are left out here; the full report is in `config.json` (`mammo.report`)."
    )


def _without_curves(value: object) -> object:
    """``value`` with every ``roc`` entry (long point lists) removed, at any depth."""
    if isinstance(value, dict):
        return {k: _without_curves(v) for k, v in value.items() if k != "roc"}
    if isinstance(value, list):
        return [_without_curves(v) for v in value]
    return value


_VALIDATION = (
    "the validation patients, used for early stopping and to pick the threshold, so these figures "
    "are optimistic; the evaluation above is the one to quote"
)


def _metric_value(metrics: dict, key: str) -> float | None:
    """A finite figure (``auc_abnormal`` is ``{auc, ci95}``), rounded; None when there is none."""
    value = metrics.get(key)
    value = value.get("auc") if isinstance(value, dict) else value
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return round(float(value), 4)


_LEFT_OUT_ROWS = (
    ("n_cases_left_out", "Submitted cases left out (their images are films of the base data, or copies)"),
    ("n_cases_label_conflicts",
     "Of those, with another label than the base data's (the base label was kept)"),
    ("n_cases_withdrawn_copies", "Submitted cases left out as copies of withdrawn cases' images"),
    ("n_cases_repeated", "Submitted cases left out as later copies of an earlier case of the same label"),
    ("cases_disputed", "Submitted cases left out as copies of a film submitted under different labels"),
)


def _data_name(source: object) -> str:
    """A data source's name for the Hub's ``model-index``: ``OWNER/NAME`` for a Hub dataset (recorded
    with its commit, or as its folder in the Hub cache), else the folder's."""
    name = data_name(source)
    if not name.startswith(HUB_DATASET_PREFIX):
        return name
    return name.removeprefix(HUB_DATASET_PREFIX).split("@")[0]


def eval_results(mammo: dict) -> list[EvalResult]:
    """The card's headline figures as ``model-index`` results (the Hub shows them): the
    cross-validation when there is one, and the evaluation of the split the model records."""
    sources = (mammo.get("data") or {}).get("sources") or []
    data = ", ".join(_data_name(source) for source in sources) or "base data"
    split = mammo.get("split") if isinstance(mammo.get("split"), dict) else {}
    evaluations = [(mammo.get("metrics"), split.get("name") or "evaluation")]
    if mammo.get("cv") and split.get("name") != "cross-validation":  # the estimate to quote: first
        evaluations.insert(0, (mammo["cv"], "cross-validation"))
    results = []
    for metrics, split_name in evaluations:
        for key, kind, name in _INDEXED_METRICS:
            value = _metric_value(metrics or {}, key)
            if value is not None:
                results.append(EvalResult(task_type="image-classification", dataset_type=data,
                                          dataset_name=f"{data} ({split_name})", dataset_split=split_name,
                                          metric_type=kind, metric_name=name, metric_value=value,
                                          verified=False))
    return results


def _front_matter(mammo: dict) -> str:
    """YAML metadata through ``ModelCardData``, with the ``model-index`` of the figures."""
    results = eval_results(mammo)
    data = ModelCardData(library_name="timm", license="apache-2.0", pipeline_tag="image-classification",
                         tags=_TAGS, model_name=f"mammo {mammo.get('version') or '(unpublished)'}",
                         eval_results=results or None)
    return f"---\n{data.to_yaml()}\n---"


def render_model_card(config: dict) -> str:
    """The model card (YAML front matter + markdown) for a model folder's ``config.json``."""
    mammo = config.get("mammo") or {}
    sections = [
        _front_matter(mammo),
        _title(mammo),
        _intended_use(mammo),
        _labels_section(config),
        _model_section(config),
        _recipe_section(mammo),
        _preprocess_section(mammo),
        _cv_section(mammo),
        _baseline_section(mammo),
        _subgroups_section(mammo),
        _metrics_section(mammo.get("metrics") or {}, "## Evaluation", _evaluation_split(mammo)),
        mammo.get("val_metrics") and _metrics_section(mammo["val_metrics"], "## Validation", _VALIDATION),
        _threshold_section(mammo),
        _data_section(mammo),
        _lineage_section(mammo),
        _report_section(mammo),
        _LIMITATIONS,
        _CITATION,
    ]
    return "\n\n".join(s for s in sections if s) + "\n"
