"""Failures as the visitor reads them: an expected refusal in words and one log line, anything else
logged with its traceback and said as an unexpected error; the app keeps serving."""

import functools
import inspect
import logging

import gradio as gr

from mammo.errors import MammoError

__all__ = ["CLEAR_ERRORS", "clear_errors", "refusal", "refusal_text", "unexpected_error",
           "refused_as_receipt"]

log = logging.getLogger("mammo.app")

# errors whose message is for the visitor (everything else is a bug: logged with its traceback)
CLEAR_ERRORS = (gr.Error, MammoError)


def refusal(name: str, error: BaseException) -> gr.Error:
    """An expected refusal: one log line (without the visitor's file names), the message to the
    visitor, no traceback."""
    message = refusal_text(error)
    log.warning("%s refused: %s", name, getattr(error, "logged", message))
    return gr.Error(message, print_exception=False)


def refusal_text(error: BaseException) -> str:
    """What an expected refusal says to the visitor."""
    return error.message if isinstance(error, gr.Error) else str(error)


def unexpected_error(name: str, error: BaseException) -> gr.Error:
    log.exception("unexpected error in %s", name)  # the traceback, for the maintainer
    return gr.Error(f"Unexpected error ({type(error).__name__}); it has been logged for the "
                    "maintainers.", print_exception=False)


def clear_errors(fn):
    """Every failure reaches the visitor as a gr.Error with a clear message; the app keeps serving.
    Expected refusals are logged as one line, anything else with its traceback."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except CLEAR_ERRORS as error:
                raise refusal(fn.__name__, error) from error
            except Exception as error:
                raise unexpected_error(fn.__name__, error) from error

        return streaming

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CLEAR_ERRORS as error:
            raise refusal(fn.__name__, error) from error
        except Exception as error:
            raise unexpected_error(fn.__name__, error) from error

    return wrapper



def refused_as_receipt(fn):
    """``fn`` (a :func:`clear_errors` handler returning a receipt) for the page: a refusal is said in the
    corner and returned as the receipt, ``{"refused": why}`` (with ``duplicate_of``, the stored case,
    where its image was one's), so that its words stay where the receipt goes once the toast has gone
    (a walk's refusal, naming two fields to fix, went after 10 s and left nothing)."""
    @functools.wraps(fn)
    def receipt(*args, **kwargs) -> dict:
        try:
            return fn(*args, **kwargs)
        except gr.Error as error:
            gr.Warning(error.message)
            duplicate_of = getattr(error.__cause__, "duplicate_of", None)
            return {"refused": error.message, **({"duplicate_of": duplicate_of} if duplicate_of else {})}

    return receipt
