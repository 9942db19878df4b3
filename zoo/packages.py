"""`zoo install` / `zoo uninstall`: pip in zoo's own environment. Uninstalling is guarded: zoo, pip and what zoo
needs to run (directly or through what it needs) are refused, whether named on the command line or in a
requirements file (-r FILE), so that removing a plugin cannot break zoo."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from collections.abc import Iterable

from .errors import ZooError
from .plugins import normalize_distribution as canonical  # PEP 503: Pydantic_Core is pydantic-core

#: A distribution's name at the start of a requirement: torch, torch>=2, torch[extra], torch @ https://..., torch;python_version>"3"
NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


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


def named(arguments: Iterable[str]) -> list[str]:
    """The distributions that `pip uninstall ARGUMENTS` would remove, found as pip itself finds them: its command line
    (-yr FILE, abbreviated long options), requirement files (nested -r, -e lines) and names from URLs, wheels and
    #egg= fragments. Without pip's own code (pip cannot run then either), the plain names given."""
    arguments = list(arguments)
    try:
        from pip._internal.commands import create_command
        from pip._internal.exceptions import InstallationError
        from pip._internal.req.constructors import install_req_from_line, install_req_from_parsed_requirement
        from pip._internal.req.req_file import parse_requirements
    except ImportError:
        return named_to_install(arguments)
    command = create_command("uninstall")
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # where pip refuses the line it prints its usage, and does so again when run
            options, names = command.parse_args(arguments)
    except SystemExit:
        return []
    try:
        found = [install_req_from_line(name) for name in names]
        with command._build_session(options) as session:
            found += [install_req_from_parsed_requirement(parsed) for file in options.requirements or []
                      for parsed in parse_requirements(file, options=options, session=session)]
    except (InstallationError, OSError) as error:
        raise ZooError(f"Cannot read what to uninstall: {error}. Nothing was uninstalled.") from None
    return [requirement.name for requirement in found if requirement.name]


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


def installed() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """{canonical name: (name, version, entry-point groups)} of every distribution in zoo's environment."""
    import importlib
    from importlib.metadata import distributions

    importlib.invalidate_caches()  # pip has just changed site-packages under this process
    found = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            found[canonical(name)] = (name, dist.version, tuple(sorted({ep.group for ep in dist.entry_points})))
    return found


def no_plugin_added(arguments: Iterable[str], before: dict[str, tuple[str, str, tuple[str, ...]]]) -> str | None:
    """A note when what was installed as a plugin adds none (no entry point in the group 'zoo'), e.g. a package whose
    pyproject.toml names another group: it installs without a word and adds nothing to `zoo list`. The packages named on
    the command line are the ones meant (not the dependencies pip brought or upgraded); for a path or a URL, all it
    installed."""
    after = installed()
    changed = {key: entry for key, entry in after.items() if before.get(key) != entry}
    names = {canonical(name) for name in named_to_install(arguments)}
    if "zoo" in names or any("zoo" in after[name][2] for name in names if name in after):
        return None  # zoo's own extras, or a plugin (upgraded or not)
    meant = [after[name] for name in sorted(names) if name in changed] if names else list(changed.values())
    if not meant or any("zoo" in groups for _, _, groups in meant):
        return None
    near = sorted({f"'{group}' ({name})" for name, _, groups in meant for group in groups if "zoo" in group.lower()})
    return (f"Note: {', '.join(f'{name} {version}' for name, version, _ in meant)} adds no zoo plugin. If it was meant to: a "
            f"plugin declares an entry point in the group 'zoo' ([project.entry-points.zoo] in its pyproject.toml; docs/plugins.md)"
            + (f", not {', '.join(near)}." if near else "."))


def named_to_install(arguments: Iterable[str]) -> list[str]:
    """The plain names on a pip command line (zoo[export] is zoo), not its options, paths or files."""
    return [found.group(1) for argument in arguments if not argument.startswith(("-", ".", "/")) and (found := NAME.match(argument))]
