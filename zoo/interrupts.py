"""Raising from a signal handler (Ctrl-C, SIGTERM, SIGHUP) without killing the process.

Python raises a handler's exception wherever the main thread happens to be. Inside an import that is often a C
extension's initialisation (onnx, protobuf, torch's submodules), which cannot unwind a foreign exception: the
process aborts (SIGABRT, SIGSEGV) instead of removing what it was writing. So during an import the signal waits:
it is sent again every 50 ms until the import has finished, a moment later (or, for an import that hangs, until
10 s have passed: then it is raised there after all, as Python would have)."""

from __future__ import annotations

import os
import threading
import time
from types import FrameType

RETRY_SECONDS = 0.05
PATIENCE_SECONDS = 10.0
_waiting_since: dict[int, tuple[float, float]] = {}  # signal number: when it first and last arrived inside an import


def raise_when_safe(error: BaseException, signum: int, frame: FrameType | None) -> None:
    """Raise error now, or, while a module is being imported, send signum again shortly so its handler runs again."""
    now = time.monotonic()
    first, last = _waiting_since.get(signum, (now, now))
    if now - last > 1.0:  # no retry for a second: this is a new signal (the last one's handler did not raise)
        first = now
    _waiting_since[signum] = (first, now)
    if importing(frame) and now - first < PATIENCE_SECONDS:
        later = threading.Timer(RETRY_SECONDS, os.kill, (os.getpid(), signum))
        later.daemon = True  # a process that ends meanwhile does not wait for it
        later.start()
        return
    del _waiting_since[signum]
    raise error


def importing(frame: FrameType | None) -> bool:
    """Whether a frame on the stack is importlib's (the Python side of every import, C extensions' included)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False
