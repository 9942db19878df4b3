"""Shared fixtures: small IDX datasets written by the tests, the fixture plugin packages installed
for real (pip, into a folder of their own), and an environment free of the user's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FIXTURES, make_idx_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """640 training and 160 test images in a flat folder of .gz IDX files."""
    return make_idx_dataset(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture plugin packages, installed by pip (real dist-info, real entry points) into a
    folder that tests put on the path, so the development environment stays clean."""
    site = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site),
         str(FIXTURES / "zoo-demo-plugin"), str(FIXTURES / "zoo-broken-plugin")],
        check=True,
        capture_output=True,
    )
    return site


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ZOO_* settings or user cache leak into a test; each test runs in its own folder."""
    for name in list(os.environ):
        if name.startswith("ZOO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
