"""User-facing errors: one clear paragraph, exit status 2, never a traceback."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class ZooError(Exception):
    """An error the user can fix; the CLI prints its message and exits with `exit_code`."""

    exit_code = 2


class ZooWarning(UserWarning):
    """Something went wrong that did not stop the work: zoo.api.leaderboard's failed cells (the CLI exits 1 for them)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP stopped the work (zoo.stops), with a checkpoint and how to continue in its message; the
    CLI exits as a shell reports the signal (130, 143, 129). A KeyboardInterrupt, not a ZooError: a notebook's loop that
    skips failing settings (`except zoo.ZooError`) must still stop when the person presses Stop.
    run_dir: the run it stopped (zoo.run(resume=error.run_dir) continues it), None where none was started."""

    def __init__(self, message: str, exit_code: int = 130, run_dir: Path | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.run_dir = run_dir


#: Whether messages speak to the command line (flags) or to Python (keywords): zoo.cli sets it for its commands.
_COMMAND_LINE: ContextVar[bool] = ContextVar("zoo_command_line", default=False)
#: Set for the workers of zoo.run_processes (zoo.launcher): their command line was written by Python code, not a person.
CALLED_FROM_PYTHON = "ZOO_CALLED_FROM_PYTHON"


@contextmanager
def speaking_to_the_command_line() -> Iterator[None]:
    token = _COMMAND_LINE.set(os.environ.get(CALLED_FROM_PYTHON) != "1")
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def on_the_command_line() -> bool:
    return _COMMAND_LINE.get()


def spoken(command_line: str, python: str) -> str:
    """A how-to in the words of whoever called: `zoo run --resume RUN` for the CLI, zoo.run(resume='RUN') for Python."""
    return command_line if _COMMAND_LINE.get() else python


def option(flag: str, value: object = None) -> str:
    """A setting as the caller gives it: `--data-dir` or data_dir=; with a value, `--init RUN` or init='RUN'."""
    keyword = flag.lstrip("-").replace("-", "_")
    if value is None:
        return spoken(flag, f"{keyword}=")
    return spoken(f"{flag} {value}", f"{keyword}={str(value) if isinstance(value, (int, float)) else repr(str(value))}")


def set_it(assignment: str) -> str:
    """A component setting as the caller gives it: `--set model.width=64` or sets=['model.width=64']."""
    return spoken(f"--set {assignment}", f"sets=[{assignment!r}]")


def resume_it(run_dir: object, nproc: int | None = None) -> str:
    """How to continue a stopped run, as its caller would write it."""
    if nproc is not None:
        return spoken(f"`zoo run --resume {run_dir} --nproc {nproc}`", f"zoo.run_processes({nproc}, resume={str(run_dir)!r})")
    return spoken(f"`zoo run --resume {run_dir}`", f"zoo.run(resume={str(run_dir)!r})")


class DataUnavailable(ZooError):
    """A dataset's files are not on this machine and cannot be fetched: the machine's state, not a fault of the
    plugin (`zoo plugins --check` skips such a dataset instead of failing it). Dataset plugins raise it for that."""


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name nearest to `name`, for a 'did you mean' hint; case is ignored (TUNED finds tuned)."""
    by_lower = {each.lower(): each for each in known}
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
    return by_lower[matches[0]] if matches else None


def plugin_package(code: object) -> str:
    """The package whose frames are a plugin's own code: a module name, or where `code` (a factory, a hook, a
    functools.partial of one) is defined; a built-in plugin is its own module of zoo_plugins, others their top package."""
    module = code if isinstance(code, str) else getattr(code, "__module__", None) or getattr(getattr(code, "func", None), "__module__", None) or ""
    return module if module.startswith("zoo_plugins.") else module.split(".")[0]


def in_package(module: str, package: str) -> bool:
    return bool(package) and (module == package or module.startswith(package + "."))


def raised_in(error: BaseException, code: object) -> str:
    """' (at FILE:LINE)': the innermost frame of the plugin's own code (see plugin_package) in the error's traceback,
    so that a one-paragraph error still says where to look; '' when that code is not in it."""
    package, traceback, found = plugin_package(code), error.__traceback__, ""
    while traceback is not None:
        if in_package(traceback.tb_frame.f_globals.get("__name__", ""), package):
            found = f" (at {traceback.tb_frame.f_code.co_filename}:{traceback.tb_lineno})"
        traceback = traceback.tb_next
    return found


def unknown_name(kind: str, name: str, known: Iterable[str]) -> ZooError:
    """'unknown model X', the names that do exist, and the closest one."""
    from .names import natural_sorted

    known = natural_sorted(set(known))
    hint = closest(name, known)
    message = f"Unknown {kind} {name!r}."
    if hint:
        message += f" Did you mean {hint}?"
    message += f" Known {kind}{'es' if kind.endswith('s') else 's'}: {', '.join(known) if known else '(none)'}."
    message += f" Run `zoo list` to see every {kind} and the plugin that provides it."
    return ZooError(message)


def describe_validation_error(where: str, error: ValidationError, known: Iterable[str] = (), what: str = "this component",
                              settable: bool = False, by_caller: bool = False) -> str:
    """Flatten pydantic's error list into 'where.field: what' clauses; an unknown key gets the nearest of
    the `known` ones (the model's fields) as a hint; settable: a missing one says how to --set it (a command's own);
    by_caller: the values came from the caller (flags or keywords, hinted in their words), not from a file (TOML)."""
    toml = not by_caller or on_the_command_line()
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in (where, *item["loc"]) if p != "")
        message = item["msg"].removeprefix("Value error, ") if item["type"] == "value_error" else item["msg"]  # a validator's own words
        if item["type"] == "extra_forbidden":
            top = len(item["loc"]) == 1  # a key of the model itself (`known`), not of something nested in it
            hint = closest(str(item["loc"][0]), known) if top else None
            message = f"unknown key (not a setting of {what if top else 'this component'}" + (f"; did you mean {hint}?)" if hint else ")")
        if isinstance(item.get("input"), str) and item["type"].split("_")[0] in ("float", "int", "bool"):  # .01 or True, as Python writes them
            message += ("; values are TOML: numbers as 0.01 or 1e-3, switches as true or false" if toml
                        else "; give a number or True/False (in sets=, TOML text: 0.01, 1e-3, true)")
        if "input" in item and item["type"] != "missing":
            as_list = f"a list is written in brackets, e.g. [{item['input']}]" if toml else f"give a list, e.g. [{item['input']!r}]"
            message += f" (got {item['input']!r}" + (f"; {as_list}" if item["type"] == "list_type" and
                                                     isinstance(item["input"], (int, float, str)) else "") + ")"
        if item["type"] == "missing" and len(item["loc"]) == 1 and settable:  # a component's setting with no default
            message += f" (give it with {set_it(f'{location}=VALUE')})"
        parts.append(f"{location}: {message}")
    return "; ".join(parts)


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


def strict_plugins(env: object = None) -> bool:
    """ZOO_STRICT_PLUGINS as a boolean: any plugin error then shows its real traceback instead of a
    paragraph (for debugging a plugin). 1/true/yes/on turn it on, 0/false/no/off or unset leave it off."""
    import os

    value = (env if env is not None else os.environ).get("ZOO_STRICT_PLUGINS", "")  # type: ignore[attr-defined]
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ZooError(f"ZOO_STRICT_PLUGINS={value!r} is not a boolean; use 1, true, yes or on (or 0, false, no, off).")
