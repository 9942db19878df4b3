"""Raising from a signal handler (Ctrl-C, SIGTERM, SIGHUP) without killing the process.

Python raises a handler's exception wherever the main thread happens to be. Inside a C extension's initialisation
(onnx's, protobuf's: their module init calls back into Python) the exception cannot unwind: the process aborts
(SIGABRT, SIGSEGV) instead of removing what it was writing. So while an extension module initialises, the signal
waits: it is sent again 50 ms later, once however often it was pressed, until the initialisation is over (or, for one
that hangs, until 10 s have passed: then it is raised there after all, as Python would have)."""

from __future__ import annotations

import os
import threading
import time
from types import FrameType

RETRY_SECONDS = 0.05
PATIENCE_SECONDS = 10.0
_waiting_since: dict[int, tuple[float, float]] = {}  # signal number: when it first and last arrived, held back
_resend_due: set[int] = set()  # signals whose second sending is scheduled


def raise_when_safe(error: BaseException, signum: int, frame: FrameType | None) -> None:
    """Raise error now, or, while an extension module initialises, have signum sent again shortly (once)."""
    now = time.monotonic()
    first, last = _waiting_since.get(signum, (now, now))
    if now - last > 1.0:  # nothing held back for a second: this is a new signal (the last one's handler did not raise)
        first = now
    if initialising_extension(frame) and now - first < PATIENCE_SECONDS:
        _waiting_since[signum] = (first, now)
        if signum not in _resend_due:  # a second Ctrl-C meanwhile is the same request, not a second one
            _resend_due.add(signum)
            later = threading.Timer(RETRY_SECONDS, _send_again, (signum,))
            later.daemon = True  # a process that ends meanwhile does not wait for it (main() asks held_back())
            later.start()
        return
    _waiting_since.pop(signum, None)
    raise error


def held_back() -> int | None:
    """A signal still held back (the command ended before it was sent again), if any."""
    return next(iter(_waiting_since), None)


def _send_again(signum: int) -> None:
    _resend_due.discard(signum)
    os.kill(os.getpid(), signum)


def initialising_extension(frame: FrameType | None) -> bool:
    """Whether importlib is creating or executing a C extension module somewhere below this frame."""
    while frame is not None:
        code = frame.f_code
        if (code.co_filename.startswith("<frozen importlib") and code.co_name in ("create_module", "exec_module")
                and type(frame.f_locals.get("self")).__name__ == "ExtensionFileLoader"):
            return True
        frame = frame.f_back
    return False
