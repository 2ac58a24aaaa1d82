"""mammo: a mammogram classifier with lesion maps that learns from clinicians (research use only)."""

__version__ = "0.1.0"
