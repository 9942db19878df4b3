"""Standard output and error that outlive their reader: `zoo run ... | head` stops the printout, never the training.

Anything a run prints (the Quickstart log, a plugin model's own print() in forward, a note on stderr) goes through
sys.stdout or sys.stderr. Once the reader has left, a write raises BrokenPipeError wherever it happens to be, in the
middle of a step; with these in place the rest goes to /dev/null instead, and the command ends with the status a
shell gives SIGPIPE (141). Writes to `.buffer` or to the file descriptor itself are not covered.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class Forgiving:
    """A stream that passes everything to `stream` until a write or flush finds the pipe closed; from then on the
    file descriptor points at /dev/null (so nothing still buffered fails later either) and `left` is True."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.left = False

    def write(self, text: str) -> int:
        if not self.left:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._reader_left()
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.left:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_left()

    def _reader_left(self) -> None:
        self.left = True
        to_null(self.stream)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the stream's own
        return getattr(self.stream, name)


def to_null(stream: Any) -> None:
    """Point a stream's file descriptor at /dev/null: what it still holds, or is still sent, goes nowhere without an error."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(null, stream.fileno())
    except (OSError, ValueError, AttributeError):  # closed, or no descriptor (a test's capture): nothing to redirect
        pass
    finally:
        os.close(null)


def reader_left(stream: Any) -> bool:
    """Whether `stream` is a pipe whose reader has gone, without writing to it: what a process that printed nothing itself
    (the parent of `zoo run --nproc`, whose workers print) asks at the end. Linux and macOS flag such a pipe with POLLERR."""
    import select

    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # closed, no descriptor, no poll (Windows): nothing to tell
        return False


class Guards:
    """The two guards of a block: `left` once either stream's reader has gone."""

    def __init__(self, guards: list[Forgiving]) -> None:
        self.guards = guards

    @property
    def left(self) -> bool:
        return any(guard.left for guard in self.guards)


@contextmanager
def outliving_its_reader() -> Iterator[Guards]:
    """sys.stdout and sys.stderr as Forgiving streams while the block runs (a closed one, None, is left alone);
    each is flushed through its guard before it is put back, so a leftover write cannot fail at exit."""
    names = [name for name in ("stdout", "stderr") if getattr(sys, name) is not None]
    guards = {name: Forgiving(getattr(sys, name)) for name in names}
    for name, guard in guards.items():
        setattr(sys, name, guard)
    try:
        yield Guards(list(guards.values()))
    finally:
        for name, guard in guards.items():
            guard.flush()
            setattr(sys, name, guard.stream)
