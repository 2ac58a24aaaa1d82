"""The page's widgets: form inputs that check what an API caller sends as the page does (a refusal names
the field and is logged as one line), each input's example on the API page, and download boxes."""

import math

import gradio as gr
from gradio.data_classes import FileData
from gradio_client import handle_file
from pydantic import ConfigDict, ValidationError

from mammo.store.cases import MetadataField
from mammo.ui.gallery import api_example_file
from mammo.ui.refusals import refusal
from mammo.values import echoed, whole_number

__all__ = ["CHECKED_HERE", "download_box", "empty_value", "in_bounds", "mammogram_file", "metadata_input",
           "text_only", "with_api_example"]

# Dropdowns whose values mammo checks itself: a wrong value from an API caller gets mammo's message
# and one log line (Gradio's own check prints a traceback for every refusal)
CHECKED_HERE = {"allow_custom_value": True}


def with_api_example(component: gr.components.Component, payload, value=None):
    """``component`` with the example the API page shows (Gradio's own is a sample PDF for a file,
    "Hello!!" for a text box). Set on the instance: a Component subclass makes Gradio write a .pyi
    file beside this module at import."""
    component.example_payload = lambda: payload
    component.example_value = lambda: payload if value is None else value
    return component


def text_only(box: gr.Textbox, name: str) -> gr.Textbox:
    """``box`` (the field ``name``) refusing an API value that is not text: Gradio's text box would
    pass on a dict or a number as its repr, and the case would be stored with that as its notes. Set on
    the instance, as :func:`with_api_example` is."""
    as_text = box.preprocess

    def preprocess(payload):
        if payload is not None and not isinstance(payload, str):
            raise refusal(f"{name} field", gr.Error(f"Nothing was stored: {name} must be text, got "
                                                    f"{type(payload).__name__}."))
        return as_text(payload)

    box.preprocess = preprocess
    return box


def in_bounds(component: gr.Slider | gr.Number, name: str, whole: bool = False) -> gr.Slider | gr.Number:
    """``component`` (a slider, or a number box) whose refusal of an API value out of its range, or of
    text, names the field and is logged as one line, as :func:`clear_errors` logs refusals (Gradio's
    says "Value 5 is greater than maximum value 1." and prints a traceback); a null (an API caller's,
    or the box emptied while typing) is the component's default, not Gradio's TypeError. ``whole``: a
    fraction is refused too (a number box of precision 0 rounded an image size of 96.9 to 97). Set on
    the instance, as :func:`text_only` is."""
    check, default = component.preprocess, component.value
    kind = "a whole number" if whole else "a number"

    def preprocess(payload):
        if payload is None or payload == "":
            return default
        try:
            if isinstance(payload, bool):  # true is no number (it was taken as 1)
                raise TypeError(payload)
            number = float(payload) if isinstance(payload, str) else payload  # "256" is 256
            if isinstance(number, float) and not math.isfinite(number):  # "nan" passed a slider's check
                raise ValueError(number)
            if whole and whole_number(number) is None:
                raise ValueError(number)
            return check(number)
        except gr.Error as error:
            raise refusal(f"{name} field", gr.Error(f"{name}: {error.message}")) from error
        except (TypeError, ValueError, OverflowError) as error:  # text that is not a number, or infinity
            bounded = component.minimum is not None and component.maximum is not None
            wanted = f"{kind} from {component.minimum} to {component.maximum}" if bounded else kind
            asked = gr.Error(f"{name}: {wanted}, got {echoed(str(payload))}.")
            raise refusal(f"{name} field", asked) from error

    component.preprocess = preprocess
    return component


def download_box(label: str, **options) -> gr.File:
    """A box of files to download (not to change): without Gradio's × on each file (see PAGE_CSS)."""
    return gr.File(label=label, interactive=False, elem_classes=["download-only"], **options)


# Gradio's file value, refusing what is not one in words: a path sent as plain text, the commonest slip of
# a gradio_client caller, got pydantic's "1 validation error for FileData ... The 'meta' field must be
# explicitly provided" (an API walk). Its schema, on the API page, is Gradio's own: title and description.
class _UploadedFile(FileData):
    __doc__ = FileData.__doc__
    model_config = ConfigDict(title="FileData")

    @classmethod
    def model_validate(cls, obj, *args, **kwargs):
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as error:
            refused = gr.Error(f"The image must be sent as a file, got {echoed(obj)}: from Python, pass "
                               "gradio_client.handle_file(path) (or a URL), not the path as text.")
            refused.logged = f"a value of type {type(obj).__name__}, not a file"  # no visitor's path logged
            raise refusal("image file", refused) from error


def mammogram_file(label: str) -> gr.File:
    """A file input for a mammogram whose API example uploads a gallery image; a value that is no file
    is refused in words."""
    box = gr.File(label=label, type="filepath")
    box.data_model = _UploadedFile
    return with_api_example(box, handle_file(api_example_file()), api_example_file())


def metadata_input(field: MetadataField) -> gr.components.Component:
    """The form widget of one metadata field; every one starts empty."""
    if field.kind is bool:  # not a check box: "no" and "not recorded" are different answers
        return gr.Dropdown(["yes", "no"], value=None, label=field.label, **CHECKED_HERE)
    if field.choices:
        return gr.Dropdown(list(field.choices), value=None, label=field.label, **CHECKED_HERE)
    if field.names:
        choices = [(f"{field.min + i}: {name}", field.min + i) for i, name in enumerate(field.names)]
        return gr.Dropdown(choices, value=None, label=field.label, **CHECKED_HERE)
    if field.kind is int:  # a text box: gr.Number sends 0 for an untouched field
        return with_api_example(gr.Textbox(value="", label=field.label,
                                           placeholder=f"{field.min}-{field.max}, or leave empty"),
                                str((field.min + field.max) // 2))
    return text_only(gr.Textbox(value="", label=field.label, lines=2), field.short_label)


def empty_value(field: MetadataField):
    """The value of :func:`metadata_input`'s widget when nothing is entered."""
    return None if field.kind is bool or field.choices or field.names else ""

