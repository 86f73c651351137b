"""appliance: offline-first education appliance daemon."""

__version__ = "0.1.0"
