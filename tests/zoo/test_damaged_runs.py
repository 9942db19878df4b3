"""A damaged-run-directory corpus: one file of a finished run damaged per case, run through
`zoo runs`, `zoo runs --compare`, `zoo predict`, `zoo eval` and `zoo run --resume`. Each answers with what it can
show, or one paragraph naming the file, exit 2; never a traceback, a hang or a memory blow-up."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import zoo
from zoo.cli import cli
from zoo.errors import ZooError
from zoo.rundir import read_config

SECONDS = 20  # any command here takes a second or two; longer is a hang


@pytest.fixture(scope="module")
def finished_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("damaged") / "good"
    zoo.run(dataset="mnist", epochs=2, out=out, reporters=[], sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false"])
    return out


def invoke(*args: str):
    """The CLI in-process, with an alarm so that a hang (a FIFO read) fails the test instead of blocking it."""
    def hang(signum: int, frame: object) -> None:
        raise TimeoutError(f"zoo {' '.join(args)} hung for {SECONDS} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(SECONDS)
    try:
        return CliRunner().invoke(cli, list(args))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_one_paragraph(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (TimeoutError, MemoryError))
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    for text in expected:
        assert text in result.output, result.output


def edit_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(run_dir: Path) -> None:
        config = json.loads((run_dir / "config.json").read_text())
        change(config)
        (run_dir / "config.json").write_text(json.dumps(config))
    return damage


def replace_file(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda run_dir: (run_dir / name).write_bytes(content)


def fifo(name: str) -> Callable[[Path], None]:
    def damage(run_dir: Path) -> None:
        (run_dir / name).unlink()
        os.mkfifo(run_dir / name)
    return damage


def link_to_dev_zero(name: str) -> Callable[[Path], None]:
    def damage(run_dir: Path) -> None:
        (run_dir / name).unlink()
        (run_dir / name).symlink_to("/dev/zero")
    return damage


def edit_weights(change: Callable[[dict], dict], resign: bool = True) -> Callable[[Path], None]:
    """The weights changed; resigned (the SHA-256 beside them rewritten to match, as a crafted run would) unless not."""
    def damage(run_dir: Path) -> None:
        tensors = load_file(run_dir / "model.safetensors")
        save_file(change(tensors), run_dir / "model.safetensors")
        if resign:
            from zoo.rundir import sha256_of

            (run_dir / "model.safetensors.sha256").write_text(f"{sha256_of(run_dir / 'model.safetensors')}  model.safetensors\n")
    return damage


def nan_in_first(tensors: dict) -> dict:
    first = sorted(tensors)[0]
    tensors[first][0] = float("nan")
    return tensors


DEEP = "[" * 100_000 + "]" * 100_000

#: config.json damaged: nothing can be built, so predict/eval/compare refuse; the listing flags it.
CONFIG_CASES = {
    "epochs-abc": (edit_config(lambda c: c.update(epochs="abc")), "epochs"),
    "classes-10": (edit_config(lambda c: c.update(classes=10)), "classes"),
    "components-list": (edit_config(lambda c: c.update(components=[1, 2])), "components"),
    "model-component-number": (edit_config(lambda c: c["components"]["model"].update(component=5)), "components.model.component"),
    "input-shape-negative": (edit_config(lambda c: c.update(input_shape=[1, -28, 28])), "input_shape"),
    "deep-100000": (replace_file("config.json", DEEP.encode()), "nests deeper"),
    "deep-under-the-recursion-limit": (edit_config(lambda c: c.update(extra=json.loads("[" * 500 + "]" * 500))), "nests deeper"),
    "invalid-utf8": (replace_file("config.json", b'{"components": "\xff\xfe"}'), "cannot be read as JSON"),
    "not-json": (replace_file("config.json", b"{epochs: 3"), "cannot be read as JSON"),
    "fifo": (fifo("config.json"), "not a regular file"),
    "dev-zero": (link_to_dev_zero("config.json"), "not a regular file"),
}
#: metrics.jsonl damaged: the weights are fine, so predict/eval work; runs and --compare show what they can.
METRICS_CASES = {
    "invalid-utf8": (replace_file("metrics.jsonl", b'{"epoch": 1, "test_accuracy": 0.5, "test_loss": 1.0}\n\xff\xfe\n'), "not UTF-8"),
    "array": (replace_file("metrics.jsonl", b"[1,2,3]\n"), "line 1 is an array"),
    "null": (replace_file("metrics.jsonl", b"null\n"), "line 1 is null"),
    "epoch-only": (replace_file("metrics.jsonl", b'{"epoch":1}\n'), "test_accuracy: Field required"),
    "accuracy-abc": (replace_file("metrics.jsonl", b'{"epoch":1,"test_accuracy":"abc","test_loss":1.0}\n'), "test_accuracy"),
    "fifo": (fifo("metrics.jsonl"), "not a regular file"),
    "dev-zero": (link_to_dev_zero("metrics.jsonl"), "not a regular file"),
}
#: model.safetensors damaged: the listing does not read weights; predict/eval refuse.
WEIGHTS_CASES = {
    "changed": (edit_weights(nan_in_first, resign=False), "does not match the SHA-256 its run wrote beside it (model.safetensors.sha256)"),
    "nan": (edit_weights(nan_in_first), "NaN or infinite"),
    "int64": (edit_weights(lambda t: {k: v.to(dtype=__import__("torch").int64) for k, v in t.items()}), "int64"),
    "truncated": (lambda run_dir: (run_dir / "model.safetensors").write_bytes((run_dir / "model.safetensors").read_bytes()[:500]), "not a valid safetensors file"),
    "fifo": (fifo("model.safetensors"), "not a regular file"),
    "dev-zero": (link_to_dev_zero("model.safetensors"), "not a regular file"),
}
CASES = [(f"config-{k}", "config", *v) for k, v in CONFIG_CASES.items()] + \
        [(f"metrics-{k}", "metrics", *v) for k, v in METRICS_CASES.items()] + \
        [(f"weights-{k}", "weights", *v) for k, v in WEIGHTS_CASES.items()]


@pytest.mark.parametrize(("case", "part", "damage", "why"), CASES, ids=[c[0] for c in CASES])
def test_a_damaged_run_directory_never_costs_a_traceback(case: str, part: str, damage: Callable[[Path], None], why: str,
                                                         finished_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    good = root / "good"
    shutil.copytree(finished_run, good)
    damaged = root / case
    shutil.copytree(finished_run, damaged)
    damage(damaged)

    listing = invoke("runs", "--root", str(root))
    assert listing.exit_code == 0, listing.output
    assert "Traceback" not in listing.output
    table = listing.output.split("\n\n")[0]  # (below it: the settings changed from the recipe, the damage)
    rows = {line.split()[0]: line for line in table.splitlines()[1:] if line and not line.startswith("!")}
    assert set(rows) == {"good", case}  # the damaged run hides nothing
    assert "2/2" in rows["good"] and "damaged" not in rows["good"]
    if part == "weights":
        assert "damaged" not in listing.output  # the listing does not read the weights
    else:
        assert "(damaged)" in rows[case]
        note = next(line for line in listing.output.splitlines() if line.startswith(f"! {case} is damaged: "))
        assert why in note and str(damaged) in note
        record = next(r for r in json.loads(invoke("runs", "--root", str(root), "--json").output) if r["path"] == str(damaged))
        assert why in record["problem"]

    compared = invoke("runs", "--compare", str(good), str(damaged))
    if part == "config":
        assert_one_paragraph(compared, why, str(damaged / "config.json"))
    else:
        assert compared.exit_code == 0, compared.output
        assert "The settings are the same." in compared.output
        assert ("! damaged: " in compared.output) == (part == "metrics")

    for command in (["predict", str(damaged)], ["eval", str(damaged)]):
        result = invoke(*command, "--data-dir", str(tiny_data), "--no-verify")
        if part == "metrics":
            assert result.exit_code == 0, result.output
        else:
            assert_one_paragraph(result, why, str(damaged))

    if part != "weights":  # as if killed before its weights: --resume reads config.json, rewrites the metrics
        (damaged / "model.safetensors").unlink()
        resumed = invoke("run", "--resume", str(damaged), "--data-dir", str(tiny_data), "--no-verify", "--quiet")
        if part == "config":
            assert_one_paragraph(resumed, why, str(damaged))
        else:
            assert resumed.exit_code == 0, resumed.output
            assert [json.loads(line)["epoch"] for line in (damaged / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_read_config_validates_with_the_schema_that_writes_it(finished_run: Path, tmp_path: Path) -> None:
    """The record of a real run validates; each damage above is a ZooError at read time, not later."""
    assert read_config(finished_run)["classes"] == [str(digit) for digit in range(10)]
    for name, (damage, why) in CONFIG_CASES.items():
        copy = tmp_path / name
        shutil.copytree(finished_run, copy)
        damage(copy)
        with pytest.raises(ZooError, match=why):
            read_config(copy)


def test_a_line_cut_short_by_a_crash_is_not_damage(finished_run: Path, tmp_path: Path) -> None:
    from zoo.runs import read_metrics

    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    whole = (copy / "metrics.jsonl").read_text()
    (copy / "metrics.jsonl").write_text(whole + '{"epoch": 3, "test_acc')
    epochs, problem = read_metrics(copy / "metrics.jsonl")
    assert problem is None and [e["epoch"] for e in epochs] == [1, 2]
    (copy / "metrics.jsonl").write_text(whole + '{"epoch": 3, "test_acc\n')
    epochs, problem = read_metrics(copy / "metrics.jsonl")
    assert problem is not None and "line 3 is not JSON" in problem and len(epochs) == 2


def test_a_damaged_changed_from_recipe_costs_only_its_mark(finished_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    """It is a note for the listing: a bad one is neither trusted nor printed as it is, and the run still resumes."""
    root = tmp_path / "runs"
    for name, value in {"text": "x", "forged": {"epochs\n! good is damaged: fake": 1}, "huge": {f"k{i}": "v" * 50 for i in range(100)}}.items():
        shutil.copytree(finished_run, root / name)
        edit_config(lambda c, value=value: c.update(changed_from_recipe=value))(root / name)
    listing = invoke("runs", "--root", str(root))
    assert listing.exit_code == 0 and "Traceback" not in listing.output
    lines = listing.output.splitlines()
    assert not any(line.startswith("! ") for line in lines)  # nothing is damaged, and no line is forged
    assert any(line.startswith("  forged: epochs ! good is damaged: fake=1") for line in lines)
    assert max(len(line) for line in lines) < 250  # a huge note is cut short
    assert next(line for line in lines if line.startswith("text ")).split()[3] == "quickstart"  # "x": unknown, no mark
    (root / "text" / "model.safetensors").unlink()
    resumed = invoke("run", "--resume", str(root / "text"), "--data-dir", str(tiny_data), "--no-verify", "--quiet")
    assert resumed.exit_code == 0, resumed.output
