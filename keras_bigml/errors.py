"""The errors keras_bigml raises for what users get wrong, each with one sentence.

Every error here carries a message that names the value, file or run at fault
and says what is allowed or how to opt in. The command line prints that
sentence alone (no traceback) and exits with `exit_status`: 2 for usage
errors (`ConfigError`), 1 for everything else.

>>> raise ConfigError("--epochs must be at least 1, got 0.")
Traceback (most recent call last):
...
keras_bigml.errors.ConfigError: --epochs must be at least 1, got 0.
>>> ConfigError.exit_status, DataError.exit_status
(2, 1)
"""


class KerasBigMLError(Exception):
    """Base of the errors whose message is meant for the user as it is."""

    exit_status = 1


class ConfigError(KerasBigMLError, ValueError):
    """A parameter value or combination that is not allowed (a usage error)."""

    exit_status = 2


class DataError(KerasBigMLError, ValueError):
    """Input data that cannot be used: missing path, unknown name, empty, NaN, bad shape or labels."""


class DownloadUnavailableError(DataError):
    """An online dataset that needs a download while the network is unreachable."""


class UntrustedFileError(KerasBigMLError, ValueError):
    """A file that would run code when loaded, refused until the user opts in."""


class ModelFileError(KerasBigMLError, OSError):
    """A saved model or export that is missing, damaged, or of the wrong kind."""


class RunError(KerasBigMLError, RuntimeError):
    """A run directory that cannot be written as asked: finished, in use, or resumed differently."""


class EngineError(KerasBigMLError, RuntimeError):
    """A compute engine that failed: unreachable scheduler, lost worker, out of memory."""


class TrainingDivergedError(KerasBigMLError, ArithmeticError):
    """A loss became NaN or infinite during training."""
