"""Shared fixtures: small IDX datasets written by the tests, the fixture plugin packages installed
for real (pip, into a folder of their own), and an environment free of the user's settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from helpers import FIXTURES, make_idx_dataset

# One torch thread in every test process and every `zoo` it starts (set before torch is imported; children inherit
# it): pytest-xdist already keeps both cores busy, and a second thread per process only adds spinning. Runs in this
# process and in a child then also use the same thread count, which bit-identical comparisons between them need.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """640 training and 160 test images in a flat folder of .gz IDX files."""
    return make_idx_dataset(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture plugin packages, installed by pip (real dist-info, real entry points) into a
    folder that tests put on the path, so the development environment stays clean. Built from copies
    (a build leaves build/ and *.egg-info beside the sources), once per run: parallel workers share it."""
    shared = shared_temp(tmp_path_factory)
    site = shared / "plugin-site"
    with FileLock(shared / "plugin-site.lock"):
        if not (site / "installed").is_file():
            sources = [shutil.copytree(FIXTURES / name, shared / "plugin-sources" / name, dirs_exist_ok=True,
                                       ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
                       for name in ("zoo-demo-plugin", "zoo-broken-plugin")]
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site), *map(str, sources)],
                check=True,
                capture_output=True,
            )
            (site / "installed").write_text("")
    return site


def shared_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This run's temporary folder, the same for every pytest-xdist worker (each has its own below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fixtures wider than a test (a module's real-data run) start before clean_environment: they get this
    session's own cache, never the user's (a run from the system copy writes 55 MB there)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("session-cache")))
    yield
    patch.undo()


def _users_plugins() -> list[str]:
    """Plugins installed into this environment besides zoo's own (the README's `zoo install -e .` of a model package, say)."""
    from importlib.metadata import entry_points

    return sorted({entry.name for entry in entry_points(group="zoo") if entry.dist is None or entry.dist.name.lower() != "zoo"})


USERS_PLUGINS = _users_plugins()


@pytest.fixture(scope="session", autouse=True)
def without_users_plugins() -> Iterator[None]:
    """This process never finds the plugins the user installed (before any catalog is made, a module's fixture's too)."""
    import zoo.plugins

    patch = pytest.MonkeyPatch()
    every = zoo.plugins._sorted_entry_points
    patch.setattr(zoo.plugins, "_sorted_entry_points", lambda: [ep for ep in every() if ep.name not in USERS_PLUGINS])
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ZOO_* settings, user cache or plugin the user installed leak into a test; each test runs in its own folder."""
    for name in list(os.environ):
        if name.startswith("ZOO_"):
            monkeypatch.delenv(name)
    if USERS_PLUGINS:  # a test sees zoo's plugins and those it installs itself (and the processes it starts: zoo's setting)
        monkeypatch.setenv("ZOO_DISABLE_PLUGINS", ",".join(USERS_PLUGINS))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (each keeps its place among them): the two pytest-xdist workers then end on short tests
    together, instead of one of them starting a 30-second torchrun job when the other has nothing left to do."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
