"""zoo.interrupts: a signal's exception waits for the import it arrived in, which it would otherwise break (and inside a
C extension's initialisation, abort the whole process: the flaky SIGTERM-during-export crash)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from zoo.interrupts import importing, raise_when_safe


def test_a_signal_during_an_import_is_raised_once_the_import_has_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "slow_to_import.py").write_text("import os, signal, time\nos.kill(os.getpid(), signal.SIGUSR1)\n"
                                                "time.sleep(0.3)\nFINISHED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen_importing = []

    def handler(number: int, frame: Any) -> None:
        seen_importing.append(importing(frame))
        raise_when_safe(RuntimeError("stopped"), number, frame)

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="stopped"):
            import slow_to_import  # noqa: F401
            time.sleep(10)  # the signal, sent again, ends this wait instead
        assert sys.modules["slow_to_import"].FINISHED and time.monotonic() - started < 5
        assert seen_importing[0] and not seen_importing[-1] and len(seen_importing) >= 2
    finally:
        signal.signal(signal.SIGUSR1, previous)
        sys.modules.pop("slow_to_import", None)


def test_outside_an_import_the_exception_is_raised_at_once() -> None:
    def handler(number: int, frame: Any) -> None:
        raise_when_safe(RuntimeError("now"), number, frame)

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        with pytest.raises(RuntimeError, match="now"):
            signal.raise_signal(signal.SIGUSR1)
            time.sleep(10)
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_an_import_that_hangs_is_interrupted_all_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C still stops zoo when an import never ends, once the wait (PATIENCE_SECONDS) is over."""
    (tmp_path / "hangs_on_import.py").write_text("import os, signal, time\nos.kill(os.getpid(), signal.SIGUSR1)\ntime.sleep(30)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("zoo.interrupts.PATIENCE_SECONDS", 0.3)

    def handler(number: int, frame: Any) -> None:
        raise_when_safe(RuntimeError("stopped"), number, frame)

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="stopped"):
            import hangs_on_import  # noqa: F401
        assert 0.3 <= time.monotonic() - started < 5 and "hangs_on_import" not in sys.modules
    finally:
        signal.signal(signal.SIGUSR1, previous)
