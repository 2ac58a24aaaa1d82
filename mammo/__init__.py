"""mammo: a mammogram classifier with Grad-CAM that learns from clinicians (research use only)."""

__version__ = "0.1.0"
