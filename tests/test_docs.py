"""The docs stay true: every hook is documented, and docs/plugins.md's example package installs,
lists and trains."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, plugin_env, run_zoo

from zoo import hookspecs

PLUGINS_MD = (ROOT / "docs" / "plugins.md").read_text()


def test_every_hook_is_documented() -> None:
    for hook in (name for name in dir(hookspecs) if name.startswith("register_")):
        assert f"`{hook}(register)`" in PLUGINS_MD, hook


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_example_plugin_package_in_the_docs_works(tiny_data: Path, tmp_path: Path) -> None:
    files = re.findall(r"```\w+\n# file: (\S+)\n(.*?)```", PLUGINS_MD, flags=re.S)
    assert len(files) == 3
    for name, text in files:
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site),
                    str(tmp_path / "src" / "zoo-tiny-cnn")], check=True, capture_output=True)
    env = plugin_env(site, ZOO_STRICT_PLUGINS="1")
    listed = run_zoo("list", "models", env=env).stdout
    assert re.search(r"^  tiny-cnn +zoo-tiny-cnn 0\.1\.0 \(tiny-cnn\)", listed, flags=re.M)
    assert re.search(r"^  tiny-cnn-32 +preset: tiny-cnn channels=32", listed, flags=re.M)
    result = run_zoo("run", "--model", "tiny-cnn-32", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify", "--epochs", "2",
                     "--reporter", "console", "--reporter", "csv", "--set", "csv.path=cnn.csv", "--set", "optimizer.lr=0.05",
                     "--out", str(tmp_path / "run"), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "cnn.csv").read_text().splitlines()
    assert rows[0] == "epoch,test_accuracy,test_loss" and [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
