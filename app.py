"""mammo Space: a Gradio Blocks UI that wires events to ``mammo.service`` (no logic of its own).

API names (``gradio_client``): /predict, /submit_case, /retrain, /models. Run: ``python app.py``.
"""

import functools
import logging
import tempfile
from pathlib import Path

import gradio as gr
import torch
from huggingface_hub import ModelCard

from mammo import views
from mammo.access import AccessDenied, can_submit, can_train
from mammo.bulk import BulkError
from mammo.config import DISCLAIMER, settings
from mammo.explain import DEFAULT_METHOD, HEATMAP_METHODS
from mammo.imaging import ImageError
from mammo.model import ModelError
from mammo.service import MammoService, RetrainBusy, RetrainError, RetrainOptions
from mammo.store import RegistryError, StoreError
from mammo.store._hub import HubError

log = logging.getLogger("mammo.app")
EXAMPLES = sorted(p for p in (Path(__file__).parent / "examples").glob("*") if p.suffix.lower()
                  in {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm"})
CLEAR_ERRORS = (ImageError, StoreError, BulkError, AccessDenied, RetrainBusy, RetrainError,
                RegistryError, HubError, ModelError, ValueError)

torch.set_num_threads(1)  # one thread per worker: more spin-wait on small CPU boxes (DESIGN.md)
SETTINGS = settings()
service = MammoService(SETTINGS)


def clear_errors(fn):
    """Every failure reaches the visitor as a gr.Error with a clear message; the app keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except CLEAR_ERRORS as error:
            raise gr.Error(str(error)) from error
        except Exception as error:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Unexpected error ({type(error).__name__}); it has been logged. "
                           "Nothing stored was changed.") from error

    return wrapper


def _user(profile: gr.OAuthProfile | None) -> str | None:
    return profile.username if profile is not None else None


def _need_file(path: str | None) -> str:
    if not path:
        raise gr.Error("Upload an image first.")
    return path


@clear_errors
def predict(image: str | None, method: str = DEFAULT_METHOD, opacity: float = 0.4):
    """Probabilities, heat-map overlay and details for one mammogram file."""
    result = service.predict(_need_file(image), method=method, opacity=opacity)
    return result.probabilities, result.overlay, result.details()


def recent_cases():
    return gr.update(choices=[(f"{c['case_id'][:8]} ({c['label']}, {c['submitted_at'][:10]})", c["case_id"])
                              for c in service.cases.recent(20)])


@clear_errors
def case_file(case_id: str | None, profile: gr.OAuthProfile | None = None) -> str:
    """A submitted case's stored PNG as a temporary file for the image input."""
    if not case_id:
        raise gr.Error("Pick a case first.")
    can_submit(_user(profile), SETTINGS).require()  # cases are visible to those who may add them
    with tempfile.NamedTemporaryFile(prefix="case-", suffix=".png", delete=False) as handle:
        handle.write(service.case_png(case_id))
    return handle.name


def after_predict(image: str | None, details: dict, history: list):
    row = views.history_row(Path(image or "?").name, details)
    history = [*history, row]
    return views.score_text(details), history, history


@clear_errors
def submit_case(image: str | None, label: str | None, view: str | None = None, laterality: str | None = None,
                density: str | None = None, birads: float | None = None,
                biopsy_confirmed: bool | None = None, age: float | None = None, notes: str = "",
                profile: gr.OAuthProfile | None = None):
    """Append one labelled case to the dataset; returns the receipt."""
    if not label:
        raise gr.Error("Pick the confirmed label first.")
    metadata = views.metadata_from_fields(
        view=view, laterality=laterality, density=density, birads=birads,
        biopsy_confirmed=biopsy_confirmed or None, age=age, notes=notes)
    return service.submit(_need_file(image), label, metadata, user=_user(profile))


@clear_errors
def submit_bulk(files: list[str] | None, label: str | None, profile: gr.OAuthProfile | None = None):
    """Append several images (one label) or a zip of <label>/<file> folders as one batch."""
    return service.submit_uploads(files or [], label, user=_user(profile))


def totals():
    return views.counts_frame(service.data_summary())


@clear_errors
def retrain(epochs: float = 3, image_size: float = 0, from_current: bool = True,
            profile: gr.OAuthProfile | None = None, progress=gr.Progress()):  # noqa: B008
    """Fine-tune on base data + submitted cases; promote only if no worse on the fixed holdout."""

    def on_epoch(log_):
        auc = "n/a" if log_.val_auc is None else f"{log_.val_auc:.3f}"
        loss = "" if log_.val_loss is None else f", val loss {log_.val_loss:.3f}"
        progress(log_.epoch / log_.epochs * 0.9,
                 desc=f"epoch {log_.epoch}/{log_.epochs}: train loss {log_.train_loss:.3f}{loss}, "
                      f"val AUC {auc}")

    options = RetrainOptions(epochs=int(epochs), image_size=int(image_size) or None,
                             from_current=bool(from_current))
    return service.retrain(options, user=_user(profile),
                           progress=lambda f, m: progress(f, desc=m), on_epoch=on_epoch)


def retrain_views(summary: dict | None):
    if not summary:
        return (gr.skip(),) * 6
    current, candidate = summary["current_metrics"], summary["candidate_metrics"]
    verdict = (f"**Promoted as {summary['version']}.**" if summary["promoted"] else
               f"**Rejected**: {summary['version']} stays served; the candidate is kept as "
               f"{summary['rejected_id']}.") + f" Gate: {summary['reason']}"
    named = {f"current {summary['current_version']}": current, "candidate": candidate}
    return (verdict, views.comparison_frame(current, candidate), views.roc_frame(named),
            views.curves_frame(summary["history"]), views.confusion_frame(candidate),
            views.reliability_frame(named))


def served_estimate():
    """What the served version is estimated to do (its card's figures) and its reliability plot."""
    mammo = service.served_config().get("mammo") or {}
    return views.estimate_text(mammo), views.reliability_frame(views.estimate_metrics(mammo))


@clear_errors
def models():
    """Every published version with its metrics, data size and dates."""
    return service.versions()


def models_views(versions: list):
    names = [v["version"] for v in versions]
    return views.versions_rows(versions), gr.update(choices=names, value=names[-1] if names else None)


@clear_errors
def version_files(version: str | None):
    if not version:
        raise gr.Error("Pick a version.")
    folder = service.registry.load(version)
    card = ModelCard(service.registry.card(version)).text  # without the YAML front matter
    return [str(folder / name) for name in ("model.safetensors", "config.json", "README.md")], card


@clear_errors
def rollback(version: str | None, profile: gr.OAuthProfile | None = None):
    if not version:
        raise gr.Error("Pick the version to serve again.")
    new = service.rollback(version, user=_user(profile))
    return f"Serving {version} again, published as {new}."


def access_note(profile: gr.OAuthProfile | None = None) -> str:
    return can_train(_user(profile), SETTINGS).reason


def build() -> gr.Blocks:
    with gr.Blocks(title="mammo — mammogram classifier (research only)") as demo:
        gr.Markdown(f"# mammo\nA mammogram classifier with lesion maps that learns from the clinicians "
                    f"who use it.\n\n> **{DISCLAIMER}**")
        if SETTINGS.on_spaces:
            gr.LoginButton()
        with gr.Tab("Predict"):
            with gr.Row():
                with gr.Column():
                    image = gr.File(label="Mammogram (PNG, JPEG, TIFF, 16-bit PNG, DICOM)",
                                    type="filepath")
                    method = gr.Dropdown(list(HEATMAP_METHODS), value=DEFAULT_METHOD, label="Heat-map method")
                    opacity = gr.Slider(0, 1, value=0.4, step=0.05, label="Heat-map opacity")
                    predict_button = gr.Button("Predict", variant="primary")
                    with gr.Accordion("Submitted cases", open=False):
                        case_choice = gr.Dropdown([], value=None, label="A recent case (id, confirmed label)")
                        use_case = gr.Button("Use this case", size="sm")
                    if EXAMPLES:
                        gr.Examples([[str(p)] for p in EXAMPLES], inputs=[image],
                                    label="Synthetic phantoms (not real patients)")
                with gr.Column():
                    probabilities = gr.Label(num_top_classes=3, label="Probabilities")
                    overlay = gr.Image(label="Heat map over the image", type="numpy", format="png",
                                       interactive=False)
                    score = gr.Markdown()
                    details = gr.JSON(label="Details")
            history_state = gr.State([])
            history = gr.Dataframe(headers=views.HISTORY_COLUMNS, label="Your predictions this session",
                                   interactive=False)
        with gr.Tab("Submit case"):
            gr.Markdown("Add a case with its **confirmed** label. The image is re-encoded (no EXIF or "
                        "DICOM tags are kept). Do not type patient identifiers in the notes.")
            with gr.Row():
                with gr.Column():
                    case_image = gr.File(label="Image", type="filepath")
                    use_predict = gr.Button("Use the image from Predict", size="sm")
                    label = gr.Dropdown(service.labels, value=None, label="Confirmed label")
                    with gr.Accordion("Optional metadata", open=False):
                        view = gr.Dropdown(["CC", "MLO"], value=None, label="View")
                        laterality = gr.Dropdown(["L", "R"], value=None, label="Laterality")
                        density = gr.Dropdown(["A", "B", "C", "D"], value=None, label="Breast density (ACR)")
                        birads = gr.Number(label="BI-RADS (0-6)", precision=0)
                        biopsy = gr.Checkbox(label="Biopsy-confirmed")
                        age = gr.Number(label="Age", precision=0)
                        notes = gr.Textbox(value="", label="Notes (plain text, no identifiers, up to "
                                                                 "2000 characters)")
                    submit_button = gr.Button("Submit case", variant="primary")
                with gr.Column():
                    receipt = gr.JSON(label="Receipt")
                    counts = gr.BarPlot(x="label", y="images", color="source", label="Cases per label")
            with gr.Accordion("Bulk upload", open=False):
                bulk_files = gr.File(label="Images of one label, or a zip of <label>/<file> folders",
                                     file_count="multiple", type="filepath")
                bulk_label = gr.Dropdown(service.labels, value=None, label="Label (not needed for a zip)")
                bulk_button = gr.Button("Submit all")
                bulk_receipt = gr.JSON(label="Batch receipt")
        with gr.Tab("Retrain"):
            access = gr.Markdown()
            data_plot = gr.BarPlot(x="label", y="images", color="source", label="Data available")
            with gr.Row():
                epochs = gr.Slider(1, 50, value=5, step=1, label="Epochs (early stopping may end sooner)")
                image_size = gr.Number(value=0, precision=0, minimum=0, maximum=1024,
                                       label="Image size in pixels (0 keeps the current model's)")
                from_current = gr.Checkbox(value=True, label="Start from the current version")
            served = gr.Markdown()
            retrain_button = gr.Button("Retrain", variant="primary")
            verdict = gr.Markdown()
            comparison = gr.Dataframe(label="Current vs candidate on the fixed held-out patients",
                                      interactive=False)
            with gr.Row():
                roc = gr.LinePlot(x="false positive rate", y="true positive rate", color="model",
                                  label="ROC, malignant vs rest (holdout)")
                curves = gr.LinePlot(x="epoch", y="value", color="series", label="Training curves")
            with gr.Row():
                confusion = gr.Dataframe(label="Candidate confusion matrix (holdout)", interactive=False)
                reliability = gr.LinePlot(x="mean predicted P(malignant)", y="observed malignant share",
                                          color="model", label="Reliability (calibration): observed "
                                          "vs predicted; the diagonal is perfect calibration")
            summary = gr.JSON(label="Summary")
        with gr.Tab("Models"):
            versions_json = gr.JSON(visible=False)
            versions = gr.Dataframe(headers=views.VERSION_COLUMNS, label="Versions", interactive=False)
            refresh = gr.Button("Refresh", size="sm")
            version = gr.Dropdown([], value=None, label="Version")
            files = gr.File(label="Weights, config and card", file_count="multiple", interactive=False)
            card = gr.Markdown()
            rollback_button = gr.Button("Serve this version again (trainers only)", variant="stop")
            rollback_note = gr.Markdown()

        predict_button.click(predict, [image, method, opacity], [probabilities, overlay, details],
                             api_name="predict", concurrency_limit=2).success(
            after_predict, [image, details, history_state], [score, history_state, history],
            api_visibility="private")
        use_predict.click(lambda path: path, image, case_image, api_visibility="private")
        use_case.click(case_file, case_choice, image, api_visibility="private")
        submit_button.click(submit_case, [case_image, label, view, laterality, density, birads, biopsy,
                                          age, notes], receipt, api_name="submit_case",
                            concurrency_limit=4).success(totals, None, counts, api_visibility="private").then(
            recent_cases, None, case_choice, api_visibility="private")
        bulk_button.click(submit_bulk, [bulk_files, bulk_label], bulk_receipt, api_visibility="private",
                          concurrency_limit=1).success(totals, None, counts, api_visibility="private")
        # 2, not 1: a second request must reach the service and be told a retrain is running
        retrain_button.click(retrain, [epochs, image_size, from_current], summary, api_name="retrain",
                             concurrency_limit=2).success(
            retrain_views, summary, [verdict, comparison, roc, curves, confusion, reliability],
            api_visibility="private").then(totals, None, data_plot, api_visibility="private")
        models_event = dict(fn=models, inputs=None, outputs=versions_json)
        refresh.click(**models_event, api_name="models")
        versions_json.change(models_views, versions_json, [versions, version], api_visibility="private")
        version.change(version_files, version, [files, card], api_visibility="private")
        rollback_button.click(rollback, version, rollback_note, api_visibility="private",
                              concurrency_limit=1).success(**models_event, api_visibility="private")
        demo.load(totals, None, counts, api_visibility="private")
        demo.load(recent_cases, None, case_choice, api_visibility="private")
        demo.load(totals, None, data_plot, api_visibility="private")
        demo.load(access_note, None, access, api_visibility="private")
        demo.load(served_estimate, None, [served, reliability], api_visibility="private")
        demo.load(**models_event, api_visibility="private")
    return demo


demo = build()
demo.queue(max_size=64, default_concurrency_limit=2)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request lines can carry signed URLs
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    demo.launch(max_file_size=SETTINGS.max_upload_mb * 1_000_000, show_error=True)  # same bytes as the store
