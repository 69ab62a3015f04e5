"""The library's named failures; the CLI maps each to an exit code (interface: 3 input
rejected, 4 locked, 2 usage)."""


class InputError(Exception):
    """A file-level problem: the input cannot be loaded as it is (exit 3)."""


class RejectedError(InputError):
    """Too many rows were quarantined (`max_reject_share`): the run is refused (exit 3).
    `result` holds the ingest counts, for the run summary."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class LockedError(Exception):
    """Another run holds the lock on the same output folder (exit 4)."""


class ReportError(RuntimeError):
    """The release failed its disclosure audit or a label is missing: nothing was published.
    The CLI gives it no exit code of its own. Here, not in `pipeline.report`, because
    `pipeline.labels` raises it too and must not import the stage."""
