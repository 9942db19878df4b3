"""`zoo install` / `zoo uninstall`: pip in zoo's own environment. Uninstalling is guarded: zoo, pip and what zoo
needs to run (directly or through what it needs) are refused, whether named on the command line or in a
requirements file (-r FILE), so that removing a plugin cannot break zoo."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import ZooError

#: A distribution's name at the start of a requirement: torch, torch>=2, torch[extra], torch @ https://..., torch;python_version>"3"
NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
REQUIREMENT_FILE = re.compile(r"(?:-r|--requirement)(?:=|\s+)?(.*)")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): Pydantic_Core is pydantic-core."""
    return re.sub(r"[-_.]+", "-", name).lower()


def needed_by_zoo() -> set[str]:
    """zoo, pip, and what zoo needs to run, directly or through what it needs (torch needs sympy), without extras."""
    from importlib.metadata import PackageNotFoundError, requires

    needed, waiting = {"pip"}, ["zoo"]
    while waiting:
        name = canonical(waiting.pop())
        if name in needed:
            continue
        needed.add(name)
        try:
            required = requires(name) or []
        except PackageNotFoundError:
            continue
        waiting += [found.group(1) for line in required if "extra ==" not in line and (found := NAME.match(line))]
    return needed


def named(arguments: Iterable[str]) -> Iterator[str]:
    """The distributions that `pip uninstall ARGUMENTS` would remove: the names given, and those in -r FILE, read as
    pip reads its command line (-yr FILE, --requirem=FILE: its short flags run together and long ones abbreviated)."""
    files, names = _as_pip_reads(list(arguments))
    for file in files:
        yield from _in_file(Path(file), depth=0)
    yield from (found.group(1) for name in names if (found := NAME.match(name)))


def _as_pip_reads(arguments: list[str]) -> tuple[list[str], list[str]]:
    """(requirement files, names) of a pip uninstall command line; none where pip itself would refuse it."""
    import contextlib
    import io

    try:
        from pip._internal.commands import create_command
    except ImportError:  # no pip here: `pip uninstall` cannot run either
        return [], []
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # pip prints its usage where it refuses; it says so again when it runs
            options, names = create_command("uninstall").parse_args(arguments)
    except SystemExit:
        return [], []
    return list(options.requirements or []), list(names)


def _in_file(path: Path, depth: int) -> Iterator[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise ZooError(f"Cannot read the requirements file {path}: {error.strerror or error}. Nothing was uninstalled.") from None
    for line in (line.split(" #", 1)[0].strip() for line in lines):
        if (nested := REQUIREMENT_FILE.fullmatch(line)) is not None and depth < 10:
            yield from _in_file(path.parent / nested.group(1).strip(), depth + 1)
        elif line and not line.startswith(("-", "#")) and (found := NAME.match(line)):
            yield found.group(1)


def check_uninstall(arguments: Iterable[str]) -> None:
    """Refuse, before pip runs, to uninstall zoo or anything it needs."""
    needed_here = needed_by_zoo()
    needed = list(dict.fromkeys(name for name in named(arguments) if canonical(name) in needed_here))
    if needed:
        one = len(needed) == 1
        raise ZooError(f"zoo uninstall removes plugins; {', '.join(needed)} {'is' if one else 'are'} zoo itself or what it needs to "
                       f"run, and removing {'it' if one else 'them'} would break zoo. Nothing was uninstalled; use pip itself "
                       f"if that is what you want.")


def pip(*args: str) -> str:
    """Run pip in zoo's environment (its output to the terminal); returns `zoo plugins` as it is afterwards."""
    done = subprocess.run([sys.executable, "-m", "pip", *args])
    if done.returncode != 0:
        raise ZooError(f"pip {args[0]} failed (exit status {done.returncode}); its message is above.")
    # -P: not this folder first on sys.path, where a plugin's own build left its .egg-info (it would still look installed)
    shown = subprocess.run([sys.executable, "-P", "-m", "zoo.cli", "plugins"], capture_output=True, text=True)
    return shown.stdout.rstrip()
