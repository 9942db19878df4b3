"""The one path from the training loop to whatever watches it: the chosen reporters and the run's
own files (metrics.jsonl, steps.jsonl)."""

from __future__ import annotations

import sys
from typing import Any

from .errors import ZooError


class Events:
    """Sends each event to every reporter in turn; a reporter that fails names its plugin."""

    def __init__(self) -> None:
        self.reporters: list[tuple[str, Any]] = []

    def add(self, name: str, reporter: Any) -> None:
        self.reporters.append((name, reporter))

    def emit(self, method: str, *args: Any) -> None:
        for name, reporter in self.reporters:
            handler = getattr(reporter, method, None)
            if handler is None:
                continue
            try:
                handler(*args)
            except (ZooError, OSError):
                raise  # a full disk is the run's problem, not the reporter's (zoo.runner says what to do)
            except Exception as error:
                raise ZooError(f"Reporter {name!r} failed in {method}: {type(error).__name__}: {error}.") from error

    def close(self, failing: bool = False) -> None:
        """Close every reporter, even after one fails to. When the run is already failing, a failure
        here is only mentioned, so the error that stopped the run stays the one the user sees."""
        problems = []
        for name, reporter in self.reporters:
            close = getattr(reporter, "close", None)
            try:
                if close is not None:
                    close()
            except Exception as error:
                problems.append(f"reporter {name!r} failed to close: {type(error).__name__}: {error}")
        self.reporters = []
        if problems and failing:
            print(f"Also: {'; '.join(problems)}.", file=sys.stderr)
        elif problems:
            raise ZooError(f"The run finished, but {'; '.join(problems)}.")
