"""veerunbook: an executable incident-response runbook."""

__version__ = "0.1.0"
