"""Case store and model registry: a local-folder backend and a Hugging Face Hub backend, one interface.

``open_case_store()`` and ``open_registry()`` choose the backend from :func:`mammo.config.settings`.
"""

from ._hub import HubError, check_reachable, hub_api
from .audit import AuditLog, open_audit_log
from .base_data import base_data_folder, base_data_source
from .cases import CaseStore, StoreError, open_case_store
from .gate import promotion_decision
from .pending import PendingError, PendingPool
from .predictions import PredictionLog, open_prediction_log, prediction_record
from .registry import ModelRegistry, RegistryError, open_registry

__all__ = [
    "PendingError",
    "PendingPool",
    "PredictionLog",
    "open_prediction_log",
    "prediction_record",
    "AuditLog",
    "open_audit_log",
    "HubError",
    "check_reachable",
    "hub_api",
    "base_data_folder",
    "base_data_source",
    "CaseStore",
    "ModelRegistry",
    "RegistryError",
    "StoreError",
    "open_case_store",
    "open_registry",
    "promotion_decision",
]
