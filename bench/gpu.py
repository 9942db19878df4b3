"""zoo on a GPU, in one go (issue #11): the captured step against the eager one, the host syncs of
an epoch, where a whole process's time goes, and the recipes' walls. Prints a markdown report and
writes it (and a JSON of the figures) into OUT.

    python bench/gpu.py DATA_DIR OUT [--write]   # DATA_DIR holds the four FashionMNIST .gz files

--write also puts the report into docs/gpu.md, under "## Measured" (`make bench` does, on a GPU).

Each check is one section; a failing one prints its error and the others still run.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import subprocess
import time
import traceback
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file

import zoo
import zoo.train

RESULTS: dict[str, object] = {}
LINES: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def section(function):
    def run(*args):
        say(f"\n## {function.__name__.replace('_', ' ')}")
        try:
            function(*args)
        except Exception:
            say("```\n" + traceback.format_exc()[-3000:] + "```")

    return run


def train(data: Path, out: Path, **settings) -> zoo.runner.RunResult:
    settings = {"dataset": "fashion-mnist", "device": "cuda", "reporters": [], "out": out, **settings}
    return zoo.run(sets=[f"dataset.data_dir={json.dumps(str(data))}"], **settings)


@section
def captured_against_eager(data: Path, out: Path) -> None:
    """The quickstart recipe, 2 epochs, graphs off and on: the same weights, and the epoch times."""
    runs = {mode: train(data, out / f"quickstart-{mode}", epochs=2, cuda_graphs=mode) for mode in ("off", "auto")}
    weights = {mode: load_file(run.run_dir / "model.safetensors") for mode, run in runs.items()}
    same = all(torch.equal(weights["off"][k], weights["auto"][k]) for k in weights["off"])
    say("| path | s per epoch | accuracy |\n|---|---|---|")
    for mode, run in runs.items():
        say(f"| quickstart, cuda_graphs={mode} | {', '.join(f'{e.seconds:.3f}' for e in run.epochs)} | "
            f"{', '.join(f'{e.test_accuracy * 100:.2f}%' for e in run.epochs)} |")
    say(f"\nweights bit-identical: **{same}**")
    RESULTS["captured_vs_eager"] = {mode: [e.seconds for e in run.epochs] for mode, run in runs.items()} | {"identical": same}


@section
def host_syncs_per_epoch(data: Path, out: Path) -> None:
    """torch.cuda's sync debug mode warns at every synchronising call; counted inside train()."""
    counts: list[int] = []
    original = zoo.train.train

    def watched(*args, **kwargs):
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = original(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
        return result

    zoo.train.train = watched
    try:
        for mode in ("auto", "off"):
            counts.clear()
            train(data, out / f"syncs-{mode}", epochs=1, cuda_graphs=mode)
            say(f"cuda_graphs={mode}: {counts} synchronising calls in the epoch's train() (938 steps, log_every 100)")
            RESULTS[f"syncs_{mode}"] = list(counts)
    finally:
        zoo.train.train = original


def cli(data: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["zoo", "run", "--data-dir", str(data), "--device", "cuda", "--out", str(out), "-q", *args], capture_output=True, text=True)


@section
def resume_of_a_captured_run(data: Path, out: Path) -> None:
    """The tuned recipe (one-cycle: the lr as a device tensor, fused SGD), 2 epochs: killed after its
    first epoch's checkpoint and resumed, against the same run uninterrupted: the same weights?"""
    import os
    import signal

    whole = cli(data, out / "tuned-whole", "--recipe", "tuned", "--epochs", "2")
    killed = out / "tuned-killed"
    process = subprocess.Popen(["zoo", "run", "--data-dir", str(data), "--device", "cuda", "--out", str(killed), "-q", "--recipe", "tuned",
                                "--epochs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None and not ((killed / "metrics.jsonl").is_file() and (killed / "metrics.jsonl").read_text().strip()):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    resumed = subprocess.run(["zoo", "run", "--resume", str(killed), "-q"], capture_output=True, text=True)
    a, b = load_file(out / "tuned-whole" / "model.safetensors"), load_file(killed / "model.safetensors")
    same = all(torch.equal(a[k], b[k]) for k in a)
    say(f"uninterrupted rc {whole.returncode}, resumed rc {resumed.returncode}; weights bit-identical: **{same}**")
    say(f"stderr: {(whole.stderr + resumed.stderr)[-500:]!r}")
    RESULTS["resume_identical"] = same


@section
def other_components(data: Path, out: Path) -> None:
    """AdamW (capturable) is captured with a constant lr; a non-finite loss still stops at its step."""
    adamw = cli(data, out / "adamw", "--optimizer", "adamw", "--epochs", "1")
    say(f"adamw: rc {adamw.returncode}, fell back: {'CUDA graphs off' in adamw.stderr}; stderr {adamw.stderr[-300:]!r}")
    nan = cli(data, out / "nan", "--set", "optimizer.lr=1e30", "--epochs", "1")
    say(f"lr=1e30: rc {nan.returncode} (3 expected); {' '.join(nan.stderr.split())[:400]}")


@section
def whole_process(data: Path, out: Path) -> None:
    """Walls of the CLI, as a user runs it: the quickstart (5 epochs) and the tuned recipe."""
    say("| command | wall s | result |\n|---|---|---|")
    for name, extra in (("quickstart", []), ("quickstart, graphs off", ["--cuda-graphs", "off"]), ("tuned", ["--recipe", "tuned"])):
        started = time.perf_counter()
        done = subprocess.run(["zoo", "run", "--data-dir", str(data), "--device", "cuda", "--out", str(out / f"cli-{len(LINES)}"), *extra],
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        last = [line for line in done.stdout.splitlines() if "Accuracy" in line][-1:] or [done.stderr[-300:]]
        say(f"| zoo run {' '.join(extra)} ({name}) | {wall:.1f} | {last[0].strip()} |")
        RESULTS[f"wall_{name}"] = wall


@section
def where_a_process_spends_its_time(data: Path, out: Path) -> None:
    """cProfile of one quickstart run in this process (after imports): the top 25 by cumulative time."""
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    train(data, out / "profiled", epochs=5)
    profile.disable()
    say(f"zoo.run, 5 epochs, in-process: {time.perf_counter() - started:.1f} s")
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
    say("```\n" + text.getvalue()[-6000:] + "```")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="zoo on a GPU, in one go (issue #11); the report goes to OUT/gpu.md and OUT/gpu.json.")
    parser.add_argument("data", type=Path, metavar="DATA_DIR", help="the folder holding the four FashionMNIST .gz files")
    parser.add_argument("out", type=Path, metavar="OUT", help="where the runs, the report and the figures go")
    parser.add_argument("--write", action="store_true", help="also put the report into docs/gpu.md, under '## Measured'")
    arguments = parser.parse_args()
    if not torch.cuda.is_available():
        parser.exit(2, "bench/gpu.py measures zoo on a GPU, and this machine's torch sees no CUDA device.\n")
    data, out = arguments.data, arguments.out
    out.mkdir(parents=True, exist_ok=True)
    say(f"# zoo on {torch.cuda.get_device_name(0)} (torch {torch.__version__})")
    for check in (captured_against_eager, host_syncs_per_epoch, resume_of_a_captured_run, other_components, whole_process,
                  where_a_process_spends_its_time):
        check(data, out / "runs")
    (out / "gpu.md").write_text("\n".join(LINES) + "\n")
    (out / "gpu.json").write_text(json.dumps(RESULTS, indent=2))
    if arguments.write:
        doc = Path(__file__).resolve().parent.parent / "docs" / "gpu.md"
        kept = doc.read_text().split("\n## Measured\n")[0]
        doc.write_text(kept + "\n## Measured\n\n`python bench/gpu.py DATA_DIR OUT --write`:\n" + "\n".join(LINES).replace("\n## ", "\n### ") + "\n")


if __name__ == "__main__":
    main()
