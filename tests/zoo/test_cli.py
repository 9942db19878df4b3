"""The CLI through click's CliRunner and as the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import run_zoo, tiny_sets

import zoo
from zoo import __version__
from zoo.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"zoo {__version__}"


def test_list_shows_every_builtin_with_its_owner() -> None:
    result = invoke("list")
    assert result.exit_code == 0
    for name, plugin in [("fashion-mnist", "builtin-datasets"), ("mnist", "builtin-datasets"), ("mlp", "builtin-models"),
                         ("cross-entropy", "builtin-losses"), ("sgd", "builtin-optimizers"), ("console", "builtin-reporters"),
                         ("jsonl", "builtin-reporters")]:
        line = next(line for line in result.output.splitlines() if line.split() and line.split()[0] == name)
        assert f"zoo {__version__} ({plugin})" in line
    assert any(line.split()[:3] == ["mlp-512", "preset:", "mlp"] and "hidden=[512, 512]" in line for line in result.output.splitlines() if line.strip())
    assert "quickstart" in result.output


def test_list_filters_by_kind_and_wildcard() -> None:
    result = invoke("list", "models", "mlp-*")
    names = [line.split()[0] for line in result.output.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert names == ["mlp-256", "mlp-512", "mlp-1024", "mlp-<width>"]
    assert "Datasets:" not in invoke("list", "optimizers").output
    assert [line.split()[0] for line in invoke("list", "mnist").output.splitlines() if line.startswith("  ")] == ["fashion-mnist", "mnist"]


def test_list_of_nothing_is_an_error_with_the_nearest_name_or_kind() -> None:
    """A typo must not look like an empty zoo: exit 1 (grep's 'no match'), one line, the name meant."""
    for args, said in [(["list", "mlp-51x"], "Did you mean mlp-512?"), (["list", "modles"], "Did you mean `zoo list models`?"),
                       (["list", "recipes", "tunde"], "No recipe matches 'tunde'. Did you mean tuned?"), (["list", "models", "xyz"], "No model matches 'xyz'.")]:
        result = invoke(*args)
        assert result.exit_code == 1 and said in result.output and "Traceback" not in result.output, (args, result.output)
    for args in (["list", "mlp-128"], ["list", "models", "mlp-5112"]):  # a width the mlp-<width> preset makes
        made = invoke(*args)
        assert made.exit_code == 0 and "mlp-<width>" in made.output, made.output
    zero = invoke("list", "mlp-0")  # made from mlp-<width>, but no network: said as `zoo run --model mlp-0` says it
    assert zero.exit_code == 2 and "model.hidden.0: Input should be greater than 0" in zero.output, zero.output
    as_json = CliRunner().invoke(cli, ["list", "--json", "zzz"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["components"] == [] and "Nothing" in as_json.stderr


def test_list_json_schema() -> None:
    data = json.loads(invoke("list", "--json").output)
    assert set(data) == {"components", "presets", "recipes", "failed_plugins", "conflicting_plugins", "warnings"}
    mlp = next(c for c in data["components"] if c["name"] == "mlp")
    assert mlp == {"kind": "model", "name": "mlp", "help": "Flatten + Linear-ReLU layers of the given hidden widths", "plugin": "builtin-models", "distribution": "zoo", "version": __version__, "status": "ok"}
    assert next(p for p in data["presets"] if p["name"] == "mlp-512")["params"] == {"hidden": [512, 512]}


def test_plugins_json() -> None:
    data = json.loads(invoke("plugins", "--json").output)
    models = next(p for p in data if p["name"] == "builtin-models")
    assert models["hooks"] == ["register_models"] and models["status"] == "loaded" and models["components"] == ["model:mlp"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--model", "mpl-512"], "Did you mean mlp-512?"),
        (["run", "--epochs", "0"], "epochs: Input should be greater than 0"),
        (["run", "--set", "model.hidden=[0]"], "model.hidden.0: Input should be greater than 0"),
        (["run", "--data-dir", "/nonexistent/dir"], "does not exist"),
        (["predict", "/nonexistent/run"], "is not a run directory"),
        (["list", "models", "x", "--registry", "/nonexistent.toml"], "does not exist"),
        (["run", "--set", "model.hidden=1024"], "(got 1024; a list is written in brackets, e.g. [1024])"),
        (["run", "--set", "optimizer.lr=.01"], "; values are TOML: numbers as 0.01 or 1e-3, switches as true or false"),
        (["run", "--data-dir", "/nonexistent/dir"], "Check --data-dir / ZOO_DATA_DIR"),
        (["run", "--set", "optimizer.lr"], "--set 'optimizer.lr': expected SECTION.KEY=VALUE, e.g. --set model.hidden=[1024,256]."),
    ],
)
def test_bad_input_is_one_paragraph_and_exit_2(args: list[str], expected: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--lr", "0.1"], "No such option: --lr. 'lr' is a setting of the optimizer (sgd): give it with --set optimizer.lr=VALUE"),
        (["run", "--width", "64"], "'hidden' is a setting of the model (mlp): give it with --set model.hidden=VALUE"),
        (["run", "--set", "optimizer.lr", "0.1"], "Got unexpected extra argument (0.1). --set takes one word, SECTION.KEY=VALUE"),
        (["run", "--set", "model.hidden=[1024,", "256]"], "Got unexpected extra argument (256]). --set takes one word"),
        (["run", "--epochs", "2", "--set", "optimizer.lr", "2"], "Got unexpected extra argument (2). --set takes one word"),
        (["run", "--data_dir", "/x"], "No such option: --data_dir. Did you mean --data-dir?"),  # a real option first
        (["run", "tuned"], "Got unexpected extra argument (tuned). zoo run takes names as options: --recipe tuned for a recipe, --model tuned"),
    ],
)
def test_a_usage_slip_names_the_fix(args: list[str], expected: str) -> None:
    """Click's usage errors (its Usage: header, then the Error: line) with the fix for the usual slips."""
    result = invoke(*args)
    last = result.output.splitlines()[-1]
    assert result.exit_code == 2 and last.startswith("Error: ") and expected in last


def test_dry_run_prints_the_resolved_config() -> None:
    result = invoke("run", "--model", "mlp-64", "--set", "optimizer.momentum=0.9", "--dry-run")
    config = json.loads(result.output)
    assert config["components"]["model"]["params"] == {"hidden": [64, 64], "dropout": 0.0}
    assert config["components"]["optimizer"]["params"]["momentum"] == 0.9


def test_help_and_list_do_not_import_torch() -> None:
    code = (
        "import sys; from zoo.cli import cli\n"
        "for args in (['--help'], ['list'], ['plugins'], ['show', 'mlp-512'], ['show', 'mnist'], ['models']):\n"
        "    try: cli(args, standalone_mode=False)\n"
        "    except SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'torchvision') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_list_shows_measured_results_of_presets(tmp_path: Path) -> None:
    registry = tmp_path / "r.toml"
    registry.write_text('[models.tiny]\ncomponent = "mlp"\nparams = { hidden = [8] }\n'
                        '[models.tiny.results]\n"fashion-mnist/quickstart" = { accuracy = 0.5, seconds = 12.4 }\n')
    lines = invoke("list", "models", "tiny", "--registry", str(registry)).output.splitlines()
    row = next(i for i, line in enumerate(lines) if "tiny" in line)
    assert lines[row + 1].strip() == "measured fashion-mnist/quickstart: 50.00% in 12 s"  # below its row, in the description's column
    assert lines[row + 1].index("measured") == lines[row].index("hidden=[8]") + len("hidden=[8]  ")
    data = json.loads(invoke("list", "models", "tiny", "--registry", str(registry), "--json").output)
    assert data["presets"][0]["results"]["fashion-mnist/quickstart"]["accuracy"] == 0.5


@pytest.mark.slow
def test_console_script_run_and_predict(tiny_data: Path, tmp_path: Path) -> None:
    """The installed `zoo` script trains, on local files without importing torchvision (Python lists every import it
    makes on stderr); predict reads what it wrote (through the same click group, in-process)."""
    run_dir = tmp_path / "run"
    result = run_zoo("run", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify", "--epochs", "1", "--out", str(run_dir),
                     "--set", "optimizer.lr=0.1", "--threads", "1", cwd=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    assert json.loads((run_dir / "config.json").read_text())["machine"]["threads"] == 1  # --threads; os.cpu_count() here is 2
    assert "Epoch 1\n-------------------------------\nloss: " in result.stdout
    assert f"Run saved in {run_dir}" in result.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" in imported and "zoo_plugins.idx" in imported and not any(m.split(".")[0] == "torchvision" for m in imported)
    predicted = invoke("predict", str(run_dir), "--index", "3", "--data-dir", str(tiny_data), "--no-verify")
    assert predicted.exit_code == 0, predicted.output
    lines = predicted.stdout.splitlines()
    assert lines[0].startswith('Predicted: "') and len(lines) == 11
    assert sum(float(line.split()[1].rstrip("%")) for line in lines[1:]) == pytest.approx(100, abs=0.1)
    outside = invoke("predict", str(run_dir), "--index", "999", "--data-dir", str(tiny_data), "--no-verify")
    assert outside.exit_code == 2 and "outside the test split" in outside.stderr and "Traceback" not in outside.output, outside.output


def test_damaged_weights_are_a_clear_error(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    zoo.run(dataset="mnist", model="mlp-8", epochs=1, reporters=[], out=run_dir, sets=tiny_sets(tiny_data))
    weights = run_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = invoke("predict", str(run_dir), "--data-dir", str(tiny_data), "--no-verify")
    assert result.exit_code == 2 and "model.safetensors is cut short (1,000 bytes where its header describes" in result.stderr, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["list"], ["--help"], ["run", "--help"]])
def test_a_reader_that_stops_reading_ends_zoo_quietly(args: list[str]) -> None:
    """`zoo list | head -1`: a broken pipe is the reader's choice, not an error to report (exit 141, as Unix tools);
    also for the help, which is printed before any command runs."""
    process = subprocess.Popen([sys.executable, "-m", "zoo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    errors = process.stderr.read()
    assert process.wait() == 141 and errors == b""


@pytest.mark.parametrize("args", [["list"], ["run", "--dry-run"]])
def test_a_closed_standard_output_is_no_traceback(args: list[str]) -> None:
    """`zoo list >&-`: nothing to show it on, and nothing to complain about."""
    done = subprocess.run([sys.executable, "-m", "zoo", *args], stdout=None, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_a_stray_argument_not_after_set_gets_no_set_hint() -> None:
    result = invoke("run", "--set", "optimizer.lr=0.1", "--epochs", "1", "2")
    assert result.exit_code == 2 and "--set takes one word" not in result.output


def test_plain_dry_run_and_unknown_flags_do_not_import_torch(tmp_path: Path) -> None:
    code = ("import sys\nfrom zoo.cli import cli\n"
            "for args in (['run', '--dry-run'], ['run', '--lr', '1']):\n"
            "    try: cli(args, standalone_mode=False)\n"
            "    except BaseException: pass\n"
            "assert 'torch' not in sys.modules")
    (tmp_path / "runs" / "unfinished").mkdir(parents=True)  # a runs/ folder to glance at
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("package", "name"), [
    ("zoo", "zoo"), ("Torch", "Torch"), ("pluggy", "pluggy"), ("torch@https://example.invalid/torch.whl", "torch"), ("sympy>=1", "sympy"),
    ("https://example.invalid/wheels/torch-2.6.0-py3-none-any.whl", "torch"), ("git+https://example.invalid/zoo.git#egg=zoo", "zoo"),
])
def test_uninstall_refuses_zoo_and_what_it_needs(package: str, name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Named as pip reads names: plainly, with a version, as a URL, a wheel or an #egg= fragment, in a requirements file."""
    import zoo.packages

    monkeypatch.setattr(zoo.packages, "pip", lambda *args: pytest.fail(f"pip ran: {args}"))
    result = invoke("uninstall", "--no-cache-dir", package, "zoo-convnets")
    assert result.exit_code == 2 and f"{name} is zoo itself or what it needs to run" in result.output and "Nothing was uninstalled" in result.output
    (tmp_path / "more.txt").write_text(f"# plugins\nzoo-convnets\n{'-e ' if package.startswith('git+') else ''}{package}  # and this\n")
    (tmp_path / "reqs.txt").write_text("-r more.txt\n")
    for file in (["-r", str(tmp_path / "reqs.txt")], [f"--requirement={tmp_path / 'reqs.txt'}"], [f"-r{tmp_path / 'more.txt'}"],
                 ["-yr", str(tmp_path / "reqs.txt")], [f"-yr{tmp_path / 'reqs.txt'}"], ["--requireme", str(tmp_path / "reqs.txt")],
                 [f"--requirem={tmp_path / 'reqs.txt'}"]):  # as pip reads them: short flags together, long ones abbreviated
        result = invoke("uninstall", *file)
        assert result.exit_code == 2 and f"{name} is zoo itself or what it needs to run" in result.output, file


def test_uninstall_passes_plugins_to_pip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import zoo.packages

    ran = []
    monkeypatch.setattr(zoo.packages, "pip", lambda *args: ran.append(args) or "plugins")
    (tmp_path / "reqs.txt").write_text("zoo-convnets\n")
    assert invoke("uninstall", "-r", str(tmp_path / "reqs.txt"), "zoo-extra").exit_code == 0
    assert ran == [("uninstall", "--yes", "-r", str(tmp_path / "reqs.txt"), "zoo-extra")]
    missing = invoke("uninstall", "-r", str(tmp_path / "nope.txt"))
    assert missing.exit_code == 2 and "Could not open requirements file" in missing.output and len(ran) == 1


def test_a_run_whose_reader_left_trains_to_the_end(tiny_data: Path, tmp_path: Path) -> None:
    """`zoo run ... 2>&1 | head -3`: the printout stops, the training does not (a run is not a `zoo list`). Buffered as a
    user's Python buffers it (PYTHONUNBUFFERED unset): a line left in stderr's buffer must not fail at exit (status 120)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    process = subprocess.Popen([sys.executable, "-m", "zoo", "run", "--model", "mlp-8", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify",
                                "--epochs", "2", "--out", str(tmp_path / "run")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.close()
    assert process.wait(timeout=120) == 141
    assert (tmp_path / "run" / "model.safetensors").is_file() and len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_model_that_prints_while_nobody_reads_trains_to_the_end(tiny_data: Path, tmp_path: Path) -> None:
    """`zoo run | head` with a plugin model that prints in forward(): its print() meets the closed pipe in the middle of a
    step; the rest of the printout goes nowhere and the run finishes (before: exit 141 with no weights)."""
    (tmp_path / "chatty_model.py").write_text(
        "import torch, zoo\n"
        "class Chatty(torch.nn.Module):\n"
        "    def __init__(self, classes):\n"
        "        super().__init__(); self.layer = torch.nn.Linear(784, classes)\n"
        "    def forward(self, x):\n"
        "        print('forward of', len(x), 'images')\n"
        "        return self.layer(x.flatten(1))\n"
        "@zoo.hookimpl\n"
        "def register_models(register):\n"
        "    register('chatty', lambda params, shape, classes: Chatty(classes))\n")
    env = {**{key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}, "ZOO_PLUGIN_FILES": str(tmp_path / "chatty_model.py")}
    process = subprocess.Popen([sys.executable, "-m", "zoo", "run", "--model", "chatty", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify",
                                "--epochs", "2", "--out", str(tmp_path / "run")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, errors
    assert (tmp_path / "run" / "model.safetensors").is_file() and "Traceback" not in errors and "failed in" not in errors, errors


def test_control_characters_from_files_are_shown_not_obeyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry file (or a model card, a run folder's name) could otherwise retitle or rewrite the terminal."""
    registry = tmp_path / "evil.toml"
    registry.write_text('[models.mlp-evil]\ncomponent = "mlp"\nhelp = "nice\\u001b]0;pwned\\u0007\\r model [bold]x[/bold]"\nparams = { hidden = [8] }\n')
    for args in (["list", "models", "--registry", str(registry)], ["show", "mlp-evil", "--registry", str(registry)]):
        output = invoke(*args).output
        assert "mlp-evil" in output and "\x1b" not in output and "\r" not in output and "\\x1b]0;pwned\\x07\\x0d model" in output
    monkeypatch.setattr(zoo.cli, "_interactive", lambda: True)  # a terminal: the table drawn by rich, as plain text, not markup
    output = invoke("list", "models", "mlp-evil", "--registry", str(registry)).output
    assert "mlp-evil" in output and "\x1b" not in output and "\r" not in output and "[bold]x[/bold]" in output, output


def test_show_refuses_a_preset_that_run_would_refuse() -> None:
    """mlp-0 matches mlp-<width>, but a layer of width 0 cannot be built: `zoo show` said it could (hidden = [0, 0])."""
    result = invoke("show", "mlp-0")
    assert result.exit_code == 2 and "Invalid model settings for 'mlp-0'" in result.output and "greater than 0" in result.output
    assert invoke("show", "mlp-64").exit_code == 0


def test_show_says_why_a_presets_component_is_missing(tmp_path: Path) -> None:
    """It said "Unknown name 'foo'. Did you mean foo?"; `zoo run --model foo` said what is wrong, and so does show."""
    (tmp_path / "f.toml").write_text('[models.foo]\ncomponent = "nonexist"\n')
    result = invoke("show", "foo", "--registry", str(tmp_path / "f.toml"))
    assert result.exit_code == 2 and "Model preset 'foo'" in result.output and "builds model 'nonexist', which no loaded plugin provides" in result.output
    (tmp_path / "two.toml").write_text('[models.foo]\ncomponent = "mlp"\nparams = { hidden = [8] }\n[optimizers.foo]\ncomponent = "nonexist"\n')
    shown = invoke("show", "foo", "--registry", str(tmp_path / "two.toml"))  # another kind's good preset of that name is shown
    assert shown.exit_code == 0 and "preset of model mlp" in shown.output, shown.output


def test_sigterm_stops_any_command_as_ctrl_c_does(tiny_data: Path, tmp_path: Path) -> None:
    """Outside a run's training (which checkpoints first: test_stops), SIGTERM raises as Ctrl-C does, so that a command
    removes what it was writing (here export's temporary file) and exits 143 with one line, not killed silently (-15)."""
    import signal
    import time

    import zoo

    run = zoo.run(model="mlp-8", dataset="mnist", epochs=1, out=tmp_path / "run", reporters=[], sets=tiny_sets(tiny_data)).run_dir
    process = subprocess.Popen([sys.executable, "-m", "zoo", "export", str(run), "--out", str(tmp_path / "m.onnx"), "--data-dir", str(tiny_data),
                                "--no-verify"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".m.onnx.*")) and time.monotonic() < deadline:  # the exporter is at work
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and stderr.strip() == "Interrupted (SIGTERM).", (process.returncode, stderr)  # the status too, if it flakes
    assert not list(tmp_path.glob(".m.onnx.*")) and not (tmp_path / "m.onnx").exists()


def test_an_os_error_names_the_file_as_the_user_knows_it() -> None:
    """zoo writes each output beside its place under a hidden temporary name first; the message names the file itself,
    and a path that was only read is not said to be written."""
    from zoo.cli import _cannot

    assert _cannot("/runs/a/.confusion.png.k3x_9abc.tmp") == "Cannot write /runs/a/confusion.png"
    assert _cannot("out/.m.onnx.1xpiymjd.onnx") == "Cannot write out/m.onnx"
    assert _cannot("/runs/" + "x" * 300) == f"Cannot use /runs/{'x' * 300}"
    assert _cannot(None) == "Cannot write a file"


def test_a_mistyped_option_is_offered_only_its_likely_meaning() -> None:
    """click offered --epochs and --nproc for --epoch: a second, unlike guess only confuses."""
    result = invoke("run", "--epoch", "1")
    assert result.exit_code == 2 and "Did you mean '--epochs'?" in result.output and "--nproc" not in result.output


@pytest.mark.parametrize("args", [
    ["list"], ["show", "mlp"], ["plugins"], ["models"], ["runs", "--root", "."], ["run", "--dry-run"],
    ["leaderboard", "--models", "mlp-8", "--datasets", ""], ["predict", "no-such-run"], ["eval", "no-such-run"],
    ["save", "no-such-run", "name"], ["export", "no-such-run", "--out", "m.onnx"], ["uninstall", "zoo"],
])
def test_every_command_runs_in_a_process_of_its_own(args: list[str], tmp_path: Path) -> None:
    """Most tests call the CLI in-process, where modules other tests imported are already there; each command's
    cheapest path here runs in a fresh `zoo` process, as a user's does, to its own answer and without a traceback."""
    result = run_zoo(*args, cwd=tmp_path, env={"ZOO_MODELS": str(tmp_path / "store")})
    assert result.returncode in (0, 2) and "Traceback" not in result.stderr + result.stdout, result.stderr


@pytest.mark.parametrize(("args", "status"), [(["--version"], 0), (["show", "no-such-preset"], 2)])
def test_a_torchrun_worker_leaves_without_the_interpreters_finalisation(args: list[str], status: int) -> None:
    """A torchrun worker (TORCHELASTIC_RUN_ID set) ends with os._exit once its command has said everything: the interpreter's
    finalisation is where gloo's threads can abort a rank that trained to the end (the job then fails). Everything printed
    still arrives."""
    script = ("import atexit, sys\natexit.register(lambda: print('finalised'))\nsys.argv = ['zoo', *sys.argv[1:]]\n"
              "from zoo.cli import main\nmain()\n")
    for worker, finalised in ((True, False), (False, True)):
        env = {key: value for key, value in os.environ.items() if key not in ("RANK", "TORCHELASTIC_RUN_ID")}
        env |= {"RANK": "0", "TORCHELASTIC_RUN_ID": "zoo-test"} if worker else {"RANK": "0"}  # RANK alone: a cluster's pod
        result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == status and ("finalised" in result.stdout) == finalised, (worker, result)
        assert (__version__ in result.stdout) if status == 0 else ("no-such-preset" in result.stderr), result


def test_registry_before_the_command_is_the_commands(tmp_path: Path) -> None:
    """`zoo --registry FILE show NAME`, as users type it after `zoo --traceback ...`, is `zoo show NAME --registry FILE`."""
    mine = tmp_path / "my.toml"
    mine.write_text('[models.mine]\ncomponent = "mlp"\nparams = { hidden = [32] }\n')
    for args in (["--registry", str(mine), "show", "mine"], ["--traceback", f"--registry={mine}", "show", "mine"]):
        result = invoke(*args)
        assert result.exit_code == 0 and result.stdout.startswith("mine (preset of model mlp)"), (args, result.output)


def test_the_install_note_is_about_the_packages_meant_not_their_dependencies(monkeypatch: pytest.MonkeyPatch) -> None:
    """`zoo install --upgrade PLUGIN` that only upgrades numpy says nothing; a library named on purpose is named alone."""
    from zoo import packages

    before = {"zoo-demo-plugin": ("zoo-demo-plugin", "1.0", ("zoo",)), "numpy": ("numpy", "1.0", ()), "rich": ("rich", "1.0", ())}
    after = {**before, "numpy": ("numpy", "2.0", ()), "tensorboard": ("tensorboard", "2.0", ())}
    monkeypatch.setattr(packages, "installed", lambda: after)
    assert packages.no_plugin_added(["--upgrade", "zoo-demo-plugin"], before) is None
    assert packages.no_plugin_added(["zoo[tensorboard]"], before) is None
    said = packages.no_plugin_added(["tensorboard"], before)
    assert said is not None and said.startswith("Note: tensorboard 2.0 adds no zoo plugin. If it was meant to:") and "numpy" not in said
    assert "numpy 2.0" in (packages.no_plugin_added(["./my-plugin"], before) or "")  # a path: everything it installed


def test_zoo_install_keeps_pip_to_its_errors_and_warnings_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo import packages

    given = []
    monkeypatch.setattr(packages, "pip", lambda *args: given.append(args) or "")
    monkeypatch.setattr(packages, "installed", lambda: {})
    monkeypatch.setattr(packages, "no_plugin_added", lambda *args: None)
    for arguments in (["-e", "."], ["-v", "my-plugin"], ["-qq", "my-plugin"]):
        assert CliRunner().invoke(cli, ["install", *arguments]).exit_code == 0
    assert given == [("install", "--quiet", "-e", "."), ("install", "-v", "my-plugin"), ("install", "-qq", "my-plugin")]
