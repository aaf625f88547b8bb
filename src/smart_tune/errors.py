"""The one exception type a user is meant to see as a one-line message.

The command line catches :class:`SmartTuneError`, prints ``error: <message>`` and exits non-zero,
with no traceback. Library code raises it (or a subclass) for bad input: a missing file, a malformed
row, an unknown task, an invalid option. Programming errors stay ordinary exceptions.
"""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a one-line
    error quotes of an underlying failure."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SmartTuneError(Exception):
    """Bad input or configuration, explained in one line."""


class DataError(SmartTuneError):
    """A data file or split that cannot be used (missing, malformed row, unknown label, empty)."""


class ConfigError(SmartTuneError, ValueError):
    """An invalid or conflicting option (also a ValueError, as argument validation usually is)."""


class CheckpointError(SmartTuneError):
    """A checkpoint that could not be written (full disk, lost mount: the previous one is left intact) or
    that is refused on resume (a pickled object that is not a tensor)."""


class NonFiniteLoss(SmartTuneError):
    """Training stopped: the loss was NaN or Inf for too many optimizer steps in a row."""


class Interrupted(SmartTuneError):
    """Training stopped by SIGINT or SIGTERM after saving a checkpoint (or, on a second signal, at once).

    ``exit_code`` follows the shell's convention for a process ended by a signal: 128 + the signal's
    number (130 for SIGINT, 143 for SIGTERM), so that schedulers and scripts see an interrupted run.
    """

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)
