"""The built-in plugins install as `zoo_plugins` (never a bare `plugins`), and registry.toml ships
in the wheel: checked for a regular install and for the editable one the tests run in."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow  # builds and installs packages

# Just what `zoo list` needs, taken from this environment, so the installed wheel is the only zoo on the path.
LIGHT_DEPENDENCIES = ("pluggy", "click", "pydantic", "pydantic_core", "annotated_types", "typing_extensions.py", "typing_inspection")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy: setuptools leaves build/ and zoo.egg-info/ beside the sources, and an
    # egg-info in the checkout would shadow the installed entry points of later tests.
    source = tmp_path_factory.mktemp("source") / "zoo"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info", "__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
                   check=True, capture_output=True)
    return next(out.glob("zoo-*.whl"))


def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "zoo_plugins/models.py" in names and "zoo/cli.py" in names
        assert {"zoo/shipped/mlp-512-fashion-mnist/card.json", "zoo/shipped/mlp-512-fashion-mnist/model.safetensors"} <= set(names)
        assert not any(name.startswith("plugins/") for name in names)
        assert archive.read("zoo/registry.toml") == (ROOT / "registry.toml").read_bytes()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        assert "builtin-models = zoo_plugins.models" in entry_points and "zoo = zoo.cli:main" in entry_points


def test_a_regular_install_finds_its_plugins_and_registry(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    deps = tmp_path / "deps"
    deps.mkdir()
    packages = Path(__import__("pluggy").__file__).parent.parent
    for name in LIGHT_DEPENDENCIES:
        (deps / name).symlink_to(packages / name)
    code = (
        "import zoo, zoo_plugins, importlib.util\n"
        "print(zoo.__file__); print(zoo_plugins.__file__); print(importlib.util.find_spec('plugins'))\n"
        "from zoo.cli import main; main()"
    )
    result = subprocess.run([sys.executable, "-S", "-c", code, "list"], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": f"{site}:{deps}", "XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(site / "zoo" / "__init__.py") and lines[1] == str(site / "zoo_plugins" / "__init__.py")
    assert lines[2] == "None"  # no top-level `plugins` package
    assert any(line.split()[:2] == ["mlp", "zoo"] for line in lines) and any(line.split()[:1] == ["mlp-512"] for line in lines)
    assert "quickstart" in result.stdout


def test_the_editable_install_maps_plugins_to_zoo_plugins(tmp_path: Path) -> None:
    code = "import zoo_plugins, importlib.util; print(zoo_plugins.__file__); print(importlib.util.find_spec('plugins'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert result.stdout.splitlines() == [str(ROOT / "plugins" / "__init__.py"), "None"]
