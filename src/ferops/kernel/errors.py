"""Errors that carry a message a user can act on: which file, row or key, and what was expected."""


class FeropsError(Exception):
    """Base for every error ferops raises on purpose; the CLI prints these without a traceback."""

    @property
    def summary(self) -> str:
        """The error in one line, for a terminal: the message's first line (a subclass whose
        message ends in a log says it its own way)."""
        return first_line(self)


class DataError(FeropsError, ValueError):
    """Input data is unreadable or breaks the data contract."""


class ConfigError(FeropsError, ValueError):
    """params.yaml (or an override) holds a missing or invalid value."""


class ValidationFailed(FeropsError):
    """A critical Great Expectations expectation failed on the processed data."""


def first_line(exc: BaseException) -> str:
    """An exception's message in one line: its first (the type's name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
