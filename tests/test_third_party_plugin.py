"""A separately installed plugin package (tests/fixtures/zoo-demo-plugin, real entry point) adds a
model and an optimizer that `zoo run` trains with; a broken one is flagged, not fatal."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import plugin_env, run_zoo, zoo_here

pytestmark = pytest.mark.slow  # builds and installs packages


@pytest.fixture
def installed(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture packages where this process's Python finds them, as PYTHONPATH puts them for `zoo`."""
    monkeypatch.syspath_prepend(str(plugin_site))
    return plugin_site


def test_zoo_list_shows_the_plugins_components_and_flags_the_broken_one(installed: Path) -> None:
    result = zoo_here("list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.split()[:4] == ["linear", "zoo-demo-plugin", "1.2.3", "(demo)"] for line in lines)
    assert any(line.split()[:4] == ["adam", "zoo-demo-plugin", "1.2.3", "(demo)"] for line in lines)
    assert any(line.split()[:3] == ["adam-fast", "preset:", "adam"] for line in lines)
    assert any(line.startswith("! plugin broken (zoo-broken-plugin 0.0.1) has errors: import failed: ImportError") for line in lines)


def test_using_a_component_of_a_plugin_that_failed_names_the_failure(installed: Path) -> None:
    result = zoo_here("run", "--model", "from-broken-plugin")
    assert result.exit_code == 2
    assert "Unknown model 'from-broken-plugin'" in result.stderr and "plugin(s) broken (zoo-broken-plugin 0.0.1) failed to load" in result.stderr


def test_zoo_plugins_reports_the_error(installed: Path) -> None:
    result = zoo_here("plugins", "--json")
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["demo"]["status"] == "loaded" and plugins["demo"]["hooks"] == ["register_models", "register_optimizers", "register_presets", "register_reporters", "register_trained_models"]
    assert plugins["broken"]["status"] == "failed" and "does-not-exist" in plugins["broken"]["errors"][0]
    text = zoo_here("plugins").stdout
    assert "broken" in text and "error: import failed: ImportError" in text


def test_zoo_run_trains_with_the_plugins_model_and_optimizer(plugin_site: Path, tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_zoo("run", "--model", "linear", "--optimizer", "adam-fast", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify",
                     "--epochs", "3", "--reporter", "jsonl", "--out", str(run_dir), env=plugin_env(plugin_site, ZOO_LOAD_PLUGINS="demo"))
    assert result.returncode == 0, result.stderr
    epochs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(epochs) == 3 and epochs[-1]["test_accuracy"] > 0.6  # chance is 0.1
    config = json.loads((run_dir / "config.json").read_text())
    assert config["components"]["model"]["plugin"] == {"name": "demo", "distribution": "zoo-demo-plugin", "version": "1.2.3"}
    assert config["components"]["optimizer"]["params"] == {"lr": 0.01, "weight_decay": 0.0}


def throwaway_environment(tmp_path: Path) -> tuple[Path, Callable[..., subprocess.CompletedProcess[str]]]:
    """A virtual environment layered over the test one (torch, pip and zoo from there, after its own packages), so
    that what `zoo install` puts into it never lands where other tests (or parallel workers) would see it; returns its
    site-packages and `zoo ARGS` run by its Python."""
    import site
    import venv

    environment = tmp_path / "env"
    venv.create(environment, with_pip=False)
    own_site = next(environment.glob("lib/python*/site-packages"))
    (own_site / "zz-test-environment.pth").write_text("".join(f"import site; site.addsitedir({path!r})\n" for path in site.getsitepackages()))
    python = environment / "bin" / "python"

    def zoo_there(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(python), "-m", "zoo", *args], capture_output=True, text=True, timeout=300, cwd=cwd)

    return own_site, zoo_there


def test_zoo_install_and_uninstall_run_pip_in_zoos_environment(tmp_path: Path) -> None:
    """`zoo install` passes its arguments to this environment's pip and then shows the plugins;
    `zoo uninstall` takes the package out again (in a throwaway environment)."""
    import shutil

    from helpers import ROOT

    from conftest import USERS_PLUGINS

    assert "convnets" not in USERS_PLUGINS, "zoo-convnets is installed in this environment: this test installs it itself (zoo uninstall zoo-convnets)"
    own_site, zoo_here = throwaway_environment(tmp_path)

    # Built from a copy: a build leaves zoo_convnets.egg-info beside the sources, which the example's
    # own tests put on sys.path, so every later test would see an installed plugin.
    source = tmp_path / "zoo-convnets"
    shutil.copytree(ROOT / "examples" / "zoo-convnets", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    installed = zoo_here("install", "--quiet", "--no-deps", "--no-build-isolation", str(source))
    assert installed.returncode == 0, installed.stderr
    assert "Note:" not in installed.stderr  # it adds a plugin
    assert any(line.split()[:4] == ["convnets", "zoo-convnets", "0.1.0", "loaded"] for line in installed.stdout.splitlines())
    assert list(own_site.glob("zoo_convnets-*.dist-info")), "installed into zoo's own environment"
    assert "small-cnn" in zoo_here("list", "models").stdout
    assert "small-cnn" not in run_zoo("list", "models").stdout  # the test environment never saw it
    removed = zoo_here("uninstall", "zoo-convnets")
    assert removed.returncode == 0, removed.stderr
    plugins = [line.split()[0] for line in removed.stdout.splitlines() if line.split() and line.split()[0].startswith(("builtin-", "convnets"))]
    assert "builtin-models" in plugins and "convnets" not in plugins
    assert not list(own_site.glob("zoo_convnets-*.dist-info"))
    failed = zoo_here("install", str(tmp_path / "does-not-exist"))
    assert failed.returncode == 2 and "pip install failed" in failed.stderr
    project = source / "pyproject.toml"  # a slip a plugin author makes: another entry-point group
    project.write_text(project.read_text().replace("[project.entry-points.zoo]", "[project.entry-points.zoo_plugins]"))
    shutil.rmtree(source / "build", ignore_errors=True)
    unseen = zoo_here("install", "--quiet", "--no-deps", "--no-build-isolation", str(source))
    assert unseen.returncode == 0 and "convnets" not in unseen.stdout, unseen.stderr
    assert ("Note: zoo-convnets 0.1.0 adds no zoo plugin. If it was meant to: a plugin declares an entry point in the group "
            "'zoo' ([project.entry-points.zoo] in its pyproject.toml; docs/plugins.md), not 'zoo_plugins' (zoo-convnets).") in unseen.stderr


def test_the_readmes_plugin_installs_from_where_it_was_tried_and_uninstalls(tmp_path: Path) -> None:
    """The README's "Add your own model" files, word for word, in a folder where the plugin was first tried with
    ZOO_PLUGIN_FILES (so a runs/ folder sits beside it): `zoo install -e .` installs it there, and `zoo uninstall`
    run from the same folder (its .egg-info still there) shows it gone."""
    from helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    project = tmp_path / "my-zoo-models"
    for path, language in (("my_zoo_models/__init__.py", "python"), ("pyproject.toml", "toml")):
        found = re.search(rf"```{language}\n# {re.escape(path)}\n(.*?)```", readme, re.S)
        assert found, f"README has no {path} block"
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(found.group(1))
    (project / "runs" / "20261129-120000-tiny-cnn-fashion-mnist").mkdir(parents=True)
    own_site, zoo_there = throwaway_environment(tmp_path)
    installed = zoo_there("install", "--quiet", "--no-deps", "--no-build-isolation", "-e", ".", cwd=project)
    assert installed.returncode == 0, installed.stderr
    assert any(line.split()[:4] == ["my-models", "my-zoo-models", "0.1.0", "loaded"] for line in installed.stdout.splitlines()), installed.stdout
    assert "tiny-cnn" in zoo_there("list", "models", cwd=tmp_path).stdout
    dist_info = next(own_site.glob("my_zoo_models-*.dist-info"))  # what a build with isolation leaves beside the sources
    (project / "my_zoo_models.egg-info").mkdir(exist_ok=True)
    for name, as_name in (("METADATA", "PKG-INFO"), ("entry_points.txt", "entry_points.txt")):
        (project / "my_zoo_models.egg-info" / as_name).write_bytes((dist_info / name).read_bytes())
    removed = zoo_there("uninstall", "my-zoo-models", cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert "builtin-models" in removed.stdout and "my-models" not in removed.stdout, removed.stdout
