"""asdlib: anomalous sound detection of machines, importable without DVC."""

__version__ = "0.1.0"
