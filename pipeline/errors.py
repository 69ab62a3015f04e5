"""The library's named failures; the CLI maps each to an exit code (interface: 2 usage,
3 input rejected, 4 locked; README *When a run fails*: 5 environment, 128 + signal stopped)."""

import signal


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


class OutputError(Exception):
    """The output folder, the warehouse path or the lock path is not one the pipeline may
    write: a folder that is not an m3-profiles output, the input folder or one around it, a
    file that is not an m3-profiles warehouse, a symlink at the lock. Refused before
    anything is read or written (exit 2)."""


class EnvironmentFault(Exception):
    """The machine, not the data or the code, stopped the run: the disk is full, a file may
    not be read or written, memory ran out (exit 5). The message is one line naming the file
    (where one is known) and the cause; the previous output is untouched."""


class Stopped(BaseException):
    """The run was stopped by SIGTERM or SIGINT (exit 128 + the signal: 143, 130).

    A BaseException, as KeyboardInterrupt is: no `except Exception` in a stage may swallow
    it. `published` is true when the signal came after the new output was swapped in: the
    run finished its work and the output is the new one."""

    def __init__(self, signum: int, published: bool = False) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.published = published
        super().__init__(f"stopped by {self.name}")


class ReportError(RuntimeError):
    """The release failed its disclosure audit or a label is missing: nothing was published.
    The CLI gives it no exit code of its own. Here, not in `pipeline.report`, because
    `pipeline.labels` raises it too and must not import the stage."""
