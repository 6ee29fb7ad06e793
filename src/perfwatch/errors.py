"""perfwatch's exceptions: each carries what went wrong and how a person can fix it."""


class PerfwatchError(Exception):
    """An expected failure: shown as `error:` + `hint:`, never as a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(PerfwatchError):
    """The configuration is missing, malformed or names an unknown key (a usage error)."""

    exit_code = 2


class ClusterError(PerfwatchError):
    """The Dask cluster cannot be reached, or a worker cannot do the work (a set-up
    problem, like a config error)."""

    exit_code = 2


class StoreError(PerfwatchError):
    """The store cannot be opened, or its schema is missing or out of date."""


class ArtifactChanged(PerfwatchError):
    """A registered artifact changed on disk since it was registered (hash mismatch)."""


class EstimationError(PerfwatchError):
    """nannyml failed, or returned NaN where a number was expected."""


class BatchRejected(PerfwatchError):
    """A batch file breaks a hard rule of the validation contract; it is quarantined."""
