"""zoo.interrupts: a signal's exception waits while a C extension initialises, which it would otherwise abort (the
flaky SIGTERM-during-export crash: protobuf's module init calling back into Python), and only then."""

from __future__ import annotations

import importlib.util
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from zoo import interrupts
from zoo.interrupts import held_back, raise_when_safe

#: importlib's ExtensionFileLoader as the stack shows it (a frozen importlib frame whose self is one), running Python code
#: as an extension's init does when it calls back into Python.
_LOADER = compile("class ExtensionFileLoader:\n    def __init__(self, body):\n        self.body = body\n"
                  "    def create_module(self, spec):\n        return None\n"
                  "    def exec_module(self, module):\n        exec(self.body, module.__dict__)\n",
                  "<frozen importlib._bootstrap_external>", "exec")


def initialise(name: str, body: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(_LOADER, namespace)
    spec = importlib.util.spec_from_loader(name, namespace["ExtensionFileLoader"](body))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def stopping_on_usr1() -> Iterator[list[bool]]:
    """SIGUSR1 raises RuntimeError through raise_when_safe; the list gets one item per exception raised."""
    raised: list[bool] = []

    def handler(number: int, frame: Any) -> None:
        try:
            raise_when_safe(RuntimeError("stopped"), number, frame)
        except RuntimeError:
            raised.append(True)
            raise

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        yield raised
    finally:
        signal.signal(signal.SIGUSR1, previous)
        interrupts._waiting_since.clear()


PRESSED_THRICE = ("import os, signal, time\nfrom zoo.interrupts import held_back\n"
                  "for _ in range(3):\n    os.kill(os.getpid(), signal.SIGUSR1)\n    time.sleep(0.01)\n"
                  "HELD = held_back()\ntime.sleep(0.3)\nFINISHED = True\n")


def test_a_signal_during_an_extensions_initialisation_is_raised_once_after_it() -> None:
    with stopping_on_usr1() as raised:
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="stopped"):
            module = initialise("zoo_test_extension", PRESSED_THRICE)
            assert module.FINISHED and module.HELD == signal.SIGUSR1  # initialised to the end, the signal held meanwhile
            time.sleep(10)  # the signal, sent again, ends this wait instead
        assert time.monotonic() - started < 5
        for _ in range(6):  # three presses are one request: no second exception arrives
            try:
                time.sleep(0.05)
            except RuntimeError:
                pass
        assert len(raised) == 1 and held_back() is None


def test_outside_an_extension_the_exception_is_raised_at_once(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pure-Python import is interrupted where it is, as before (its frames unwind fine)."""
    (tmp_path / "zoo_test_plain.py").write_text("import os, signal, time\nos.kill(os.getpid(), signal.SIGUSR1)\ntime.sleep(10)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with stopping_on_usr1():
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="stopped"):
            import zoo_test_plain  # noqa: F401
        assert time.monotonic() - started < 5


def test_an_initialisation_that_hangs_is_interrupted_all_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C still stops zoo when an extension never finishes initialising, once the wait (PATIENCE_SECONDS) is over."""
    monkeypatch.setattr(interrupts, "PATIENCE_SECONDS", 0.3)
    with stopping_on_usr1():
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="stopped"):
            initialise("zoo_test_hangs", "import os, signal, time\nos.kill(os.getpid(), signal.SIGUSR1)\ntime.sleep(30)\n")
        assert 0.3 <= time.monotonic() - started < 5


def test_a_command_that_ends_while_a_signal_is_held_back_exits_as_interrupted(monkeypatch: pytest.MonkeyPatch,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from zoo import cli

    monkeypatch.setattr(interrupts, "held_back", lambda: signal.SIGTERM)
    assert cli._interrupted_if_held_back(0) == 143 and capsys.readouterr().err == "Interrupted (SIGTERM).\n"
    assert cli._interrupted_if_held_back(2) == 2  # a failure already says what happened
    monkeypatch.setattr(interrupts, "held_back", lambda: None)
    assert cli._interrupted_if_held_back(0) == 0
