"""Errors that carry a message a user can act on: which file, row or key, and what was expected."""


class FeropsError(Exception):
    """Base for every error ferops raises on purpose; the CLI prints these without a traceback."""


class DataError(FeropsError, ValueError):
    """Input data is unreadable or breaks the data contract."""


class ConfigError(FeropsError, ValueError):
    """params.yaml (or an override) holds a missing or invalid value."""


class ValidationFailed(FeropsError):
    """A critical Great Expectations expectation failed on the processed data."""
