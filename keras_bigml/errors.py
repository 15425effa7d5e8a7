"""Exceptions raised for bad input, each carrying one sentence that names the problem."""


class DataError(ValueError):
    """Input data that cannot be used: missing path, unknown name, empty, NaN, bad shape."""


class DownloadUnavailableError(DataError):
    """An online dataset that needs a download while the network is unreachable."""


class TrainingDivergedError(ArithmeticError):
    """A loss became NaN or infinite during training."""
