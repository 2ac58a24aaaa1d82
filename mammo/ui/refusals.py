"""Failures as the visitor reads them: an expected refusal in words and one log line, anything else
logged with its traceback and said as an unexpected error; the app keeps serving."""

import functools
import inspect
import logging

import gradio as gr

from mammo.errors import MammoError

__all__ = ["CLEAR_ERRORS", "clear_errors", "refusal", "refusal_text", "unexpected_error"]

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

