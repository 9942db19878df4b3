"""Standard output that outlives its reader: `zoo run ... | head` stops the printout, never the training.

Anything a run prints (the Quickstart log, a plugin model's own print() in forward) goes through sys.stdout. Once the
reader has left, a write raises BrokenPipeError wherever it happens to be, in the middle of a step; with this in place
the rest of the printout goes to /dev/null instead, and the command ends with the status a shell gives SIGPIPE (141).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
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

    def flush(self) -> None:
        if not self.left:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_left()

    def _reader_left(self) -> None:
        self.left = True
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
        except (OSError, ValueError, AttributeError):  # a stream without a descriptor (a test's capture): nothing to redirect
            pass

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the stream's own
        return getattr(self.stream, name)


@contextmanager
def outliving_its_reader() -> Iterator[Forgiving]:
    """sys.stdout as a Forgiving stream while the block runs; the caller reads `.left` afterwards."""
    guard = Forgiving(sys.stdout)
    sys.stdout = guard  # type: ignore[assignment]
    try:
        yield guard
    finally:
        sys.stdout = guard.stream
