"""The one exception type a user is meant to see as a one-line message.

The command line catches :class:`SmartTuneError`, prints ``error: <message>`` and exits non-zero,
with no traceback. Library code raises it (or a subclass) for bad input: a missing file, a malformed
row, an unknown task, an invalid option. Programming errors stay ordinary exceptions.
"""


class SmartTuneError(Exception):
    """Bad input or configuration, explained in one line."""


class DataError(SmartTuneError):
    """A data file or split that cannot be used (missing, malformed row, unknown label, empty)."""


class ConfigError(SmartTuneError, ValueError):
    """An invalid or conflicting option (also a ValueError, as argument validation usually is)."""
