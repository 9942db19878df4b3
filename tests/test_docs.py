"""The docs stay true: every hook is documented, and docs/plugins.md's example package installs,
lists and trains."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from helpers import ROOT, zoo_here

from zoo import hookspecs

PLUGINS_MD = (ROOT / "docs" / "plugins.md").read_text()


def test_every_hook_is_documented() -> None:
    for hook in (name for name in dir(hookspecs) if name.startswith("register_")):
        assert f"`{hook}(register)`" in PLUGINS_MD, hook


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_the_example_plugin_package_in_the_docs_works(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = re.findall(r"```\w+\n# file: (\S+)\n(.*?)```", PLUGINS_MD, flags=re.S)
    assert len(files) == 3
    for name, text in files:
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site),
                    str(tmp_path / "src" / "zoo-tiny-cnn")], check=True, capture_output=True)
    # Installed where Python finds it (as PYTHONPATH would put it), found through its entry point, in this process.
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    listed = zoo_here("list", "models").stdout
    assert re.search(r"^  tiny-cnn +zoo-tiny-cnn 0\.1\.0 \(tiny-cnn\)", listed, flags=re.M)
    assert re.search(r"^  tiny-cnn-32 +preset: tiny-cnn channels=32", listed, flags=re.M)
    checked = zoo_here("plugins", "--check", "zoo-tiny-cnn")
    assert checked.exit_code == 0 and "All 2 check(s) passed." in checked.stdout, checked.output
    result = zoo_here("run", "--model", "tiny-cnn-32", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify", "--epochs", "2",
                      "--reporter", "console", "--reporter", "csv", "--set", "csv.filename=cnn.csv", "--set", "optimizer.lr=0.05",
                      "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "cnn.csv").exists()  # into the run directory, as the README promises
    rows = (tmp_path / "run" / "cnn.csv").read_text().splitlines()
    assert rows[0] == "epoch,test_accuracy,test_loss" and [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


def test_the_event_tables_are_generated_from_the_dataclasses() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import events
    finally:
        sys.path.pop(0)
    assert events.current(PLUGINS_MD) == events.section(), "run `python docs/events.py` to regenerate docs/plugins.md's event tables"
    for cls in events.EVENTS:
        for field in dataclasses.fields(cls):
            assert f"| `{field.name}` |" in events.current(PLUGINS_MD)
    assert "`zoo.data_location`" in PLUGINS_MD or "zoo.data_location(" in PLUGINS_MD  # the data-location contract stays


def test_the_kmnist_example_in_the_docs_trains_on_idx_files(tmp_path: Path) -> None:
    from helpers import make_idx_dataset

    import zoo
    from zoo.plugins import load_catalog

    code = re.search(r"```python\n(from zoo\.datasets import .*?)```", PLUGINS_MD, flags=re.S).group(1)
    plugin = types.ModuleType("kmnist_example")
    exec(compile("import zoo\n" + code, "kmnist_example", "exec"), plugin.__dict__)
    data = make_idx_dataset(tmp_path / "kmnist", n_train=128, n_test=32)
    catalog = load_catalog(env={"ZOO_LOAD_PLUGINS": ""}, extra_plugins=[("kmnist", plugin)])
    result = zoo.run(catalog=catalog, dataset="kmnist", data_dir=data, verify=False, epochs=1, batch_size=32, reporters=[],
                     out=tmp_path / "run")
    assert len(result.epochs) == 1 and result.prediction.predicted in plugin.KMNIST.classes
    with pytest.raises(zoo.ZooError, match="is not the real kmnist file"):  # the checksums are checked
        zoo.run(catalog=catalog, dataset="kmnist", data_dir=data, epochs=1, reporters=[], out=tmp_path / "run2")


@pytest.mark.slow
def test_the_readmes_fine_tuning_commands_work_as_printed(tiny_data: Path, tmp_path: Path) -> None:
    """The README's `--init mlp-512-fashion-mnist` lines, as printed (one epoch; MNIST from the tests' own files): they
    broke once the shipped model was trained on standardised pixels."""
    import shlex

    from helpers import FASHION_MNIST_SYSTEM, run_zoo

    readme = (ROOT / "README.md").read_text()
    lines = [line.split("#")[0].removeprefix("$ zoo ").split() for line in readme.splitlines() if "--init mlp-512-fashion-mnist" in line and line.startswith("$ zoo run")]
    assert len(lines) == 2, lines
    for index, args in enumerate(lines):
        data = [] if "mnist" not in args else ["--data-dir", str(tiny_data), "--no-verify"]
        result = run_zoo(*args, *data, "--epochs", "1", "--quiet", "--out", str(tmp_path / f"run{index}"), cwd=tmp_path)
        assert result.returncode == 0, f"{shlex.join(args)}: {result.stderr}"
        assert "Started from mlp-512-fashion-mnist" in result.stderr
    assert FASHION_MNIST_SYSTEM.is_dir()  # the first line trained on the real FashionMNIST
