"""Case store and model registry: a local-folder backend and a Hugging Face Hub backend, one interface.

``open_case_store()`` and ``open_registry()`` choose the backend from :func:`mammo.config.settings`.
Each name is imported from its module on first use, so ``models list`` does not load the case
store's Arrow and ``datasets`` stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._hub import HubError, HubUnavailable, check_reachable, hub_api
    from .audit import AuditLog, open_audit_log
    from .base_data import base_data_folder, base_data_name, base_data_source
    from .cases import CaseStore, HubCaseStore, StoreError, open_case_store
    from .gate import flag_kept, line_best, promotion_decision
    from .pending import PendingError, PendingPool
    from .predictions import PredictionLog, open_prediction_log, prediction_record
    from .registry import ModelRegistry, NewerVersion, RegistryError, is_newer, open_registry

_MODULE_OF = {  # public name -> the submodule that defines it
    "HubError": "_hub", "HubUnavailable": "_hub", "check_reachable": "_hub", "hub_api": "_hub",
    "AuditLog": "audit", "open_audit_log": "audit",
    "base_data_folder": "base_data", "base_data_name": "base_data", "base_data_source": "base_data",
    "CaseStore": "cases", "HubCaseStore": "cases", "StoreError": "cases", "open_case_store": "cases",
    "flag_kept": "gate", "line_best": "gate", "promotion_decision": "gate",
    "PendingError": "pending", "PendingPool": "pending",
    "PredictionLog": "predictions", "open_prediction_log": "predictions", "prediction_record": "predictions",
    "ModelRegistry": "registry", "NewerVersion": "registry", "RegistryError": "registry",
    "open_registry": "registry", "is_newer": "registry",
}

__all__ = [
    "AuditLog", "CaseStore", "HubCaseStore", "HubError", "HubUnavailable", "ModelRegistry", "NewerVersion",
    "PendingError", "PendingPool", "PredictionLog", "RegistryError", "StoreError", "base_data_folder",
    "base_data_name", "base_data_source", "check_reachable", "flag_kept", "hub_api", "is_newer", "line_best",
    "open_audit_log", "open_case_store", "open_prediction_log", "open_registry", "prediction_record",
    "promotion_decision",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
