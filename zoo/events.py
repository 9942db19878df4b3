"""The one path from the training loop to whatever watches it: the chosen reporters and the run's
own files (metrics.jsonl, steps.jsonl)."""

from __future__ import annotations

import sys
from typing import Any

from .errors import ZooError, raised_in, strict_plugins


#: The run's own files, added by zoo.runner under these names: their failures are the run's (a full disk).
RUN_FILES = ("metrics.jsonl", "steps.jsonl")


class Events:
    """Sends each event to every reporter in turn. A plugin's reporter that raises is reported
    (naming its plugin) and dropped for the rest of the run, so watching can never cost training;
    the run's own files (RUN_FILES) fail the run. ZOO_STRICT_PLUGINS makes a reporter failure fatal."""

    def __init__(self) -> None:
        self.reporters: list[tuple[str, Any]] = []
        self.owners: dict[str, Any] = {}
        self.dropped: list[str] = []

    def add(self, name: str, reporter: Any, owner: Any = None) -> None:
        self.reporters.append((name, reporter))
        if owner is not None:
            self.owners[name] = owner

    def emit(self, method: str, *args: Any) -> None:
        for name, reporter in list(self.reporters):
            handler = getattr(reporter, method, None)
            if handler is None:
                continue
            try:
                handler(*args)
            except Exception:
                if name in RUN_FILES:
                    raise  # a full disk is the run's problem, not a reporter's (zoo.runner says what to do)
                self._drop(name, reporter, method)

    def _drop(self, name: str, reporter: Any, method: str) -> None:
        """Say which plugin's reporter failed, and go on without it (strict mode: stop)."""
        error = sys.exc_info()[1]
        owner = self.owners.get(name)
        what = f"Reporter {name!r}" + (f" ({owner})" if owner is not None else "")
        reason = f"{type(error).__name__}: {' '.join(str(error).split()).rstrip('.')}{raised_in(error, reporter)}"
        if strict_plugins():
            raise ZooError(f"{what} failed in {method}: {reason}.") from error
        self.reporters = [(n, r) for n, r in self.reporters if r is not reporter]
        self.dropped.append(f"{what} failed in {method} ({reason})")
        _say(f"! {what} failed in {method}: {reason}. Training goes on without it; ZOO_STRICT_PLUGINS=1 makes this fatal.")
        close = getattr(reporter, "close", None)
        try:
            if close is not None:
                close()
        except Exception:
            pass

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
        if self.dropped and not failing:
            _say(f"The run finished, but without {len(self.dropped)} reporter(s) that failed: {'; '.join(self.dropped)}.")
        if problems and failing:
            _say(f"Also: {'; '.join(problems)}.")
        elif problems:
            raise ZooError(f"The run finished, but {'; '.join(problems)}.")


def _say(message: str) -> None:
    """A note on standard error, which may be the pipe whose reader left (`zoo run ... 2>&1 | head`, the failure that
    dropped the console reporter): a note that cannot be shown must not stop the training it is about."""
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass
