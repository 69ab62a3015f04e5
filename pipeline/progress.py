"""How far the long steps have got, as counts: the rows of each input file read into the raw
layer (`ingest`), the models each stage has built (`warehouse.build_stage`).

The library reports (`count`); whoever shows it listens (`listening`): the CLI draws a bar on
a terminal and writes a log line when a count is complete otherwise. With nobody listening
(tests, the bench, a notebook) a count costs one global read. Module-level, as logging is,
because counts come from the reader threads of ingest and from deep inside the warehouse,
where no callback is passed down; reads nothing, writes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

# task, done, total (None: not known yet, e.g. while a file is parsed), unit ("rows read")
Listener = Callable[[str, int, int | None, str], None]

_listener: Listener | None = None


def count(task: str, done: int, total: int | None, unit: str) -> None:
    """`done` of `total` `unit` of `task` are done (`total` None: not known yet). A task is
    complete when done == total; the listener may be called from any thread."""
    listener = _listener
    if listener is not None:
        listener(task, done, total, unit)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send every count to `listener` while the block runs."""
    global _listener
    previous, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = previous
