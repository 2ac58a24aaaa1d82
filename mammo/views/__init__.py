"""Display values for the app: tables, plot frames and short texts built from results (no UI), one
module per tab (``prediction``, ``cases``, ``retrain``, ``versions``) over shared figures in words."""

from . import _common, cases, prediction, retrain, versions
from ._common import *  # noqa: F403
from .cases import *  # noqa: F403
from .prediction import *  # noqa: F403
from .retrain import *  # noqa: F403
from .versions import *  # noqa: F403

__all__ = [*_common.__all__, *prediction.__all__, *cases.__all__, *retrain.__all__, *versions.__all__]
