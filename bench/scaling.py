"""`make bench-scaling`: one process against `zoo run --nproc 2` on this machine, side by side.

Runs, in interleaved turns, the Quickstart recipe on the real FashionMNIST for a few epochs:
(1) one process, as many threads as cores; (2) one process, one thread; (3) two processes of one
thread each (`--nproc 2`, gloo over loopback). Reports per-epoch and whole-process times, their
ratios within each turn, and the accuracy of each; then what one all-reduce of mlp-512's gradients
costs between two processes (the price of every step). Writes the table into docs/scaling.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

from bench import ROOT, machine, ratio, zoo_process

MARK_BEGIN, MARK_END = "<!-- scaling: begin -->", "<!-- scaling: end -->"

SHARE = max(1, (os.cpu_count() or 1) // 2)  # the threads `zoo run --nproc 2` gives each process
STEPS_PER_EPOCH = -(-60000 // 64)
SETUPS = {
    "1 process, all threads": ([], {}),
    "1 process, 1 thread": ([], {"OMP_NUM_THREADS": "1"}),
    f"2 processes (--nproc 2), {SHARE} thread{'s' * (SHARE > 1)} each": (["--nproc", "2"], {}),
}


def measure(epochs: int, turns: int) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {name: {"epoch": [], "process": [], "accuracy": []} for name in SETUPS}
    for _ in range(turns):
        for name, (args, env) in SETUPS.items():
            seconds, metrics = zoo_process(epochs, "--quiet", *args, env={**os.environ, **env})
            results[name]["process"].append(seconds)
            results[name]["epoch"].append(statistics.median(m["seconds"] for m in metrics))
            results[name]["accuracy"].append(metrics[-1]["test_accuracy"])
    return results


def all_reduce_probe() -> None:
    """Run by torchrun in two processes: the time of one all-reduce of mlp-512's gradients."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    gradients = torch.randn(sum(p.numel() for p in torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.Linear(512, 512), torch.nn.Linear(512, 10)).parameters()))
    for _ in range(10):
        dist.all_reduce(gradients)
    started = time.perf_counter()
    for _ in range(200):
        dist.all_reduce(gradients)
    if dist.get_rank() == 0:
        print(f"{(time.perf_counter() - started) / 200} {gradients.numel() * 4}")
    dist.destroy_process_group()


def all_reduce_cost() -> tuple[float, int]:
    """Seconds per all-reduce and bytes reduced, measured by two processes that do nothing else."""
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", __file__, "--probe"],
                          capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds, size = done.stdout.split()
    return float(seconds), int(size)


def report(results: dict[str, dict[str, list[float]]], epochs: int, turns: int, reduce: tuple[float, int]) -> str:
    base = next(iter(SETUPS))
    lines = [
        f"Machine: {machine()}.",
        f"`zoo run --model mlp-512 --dataset fashion-mnist --epochs {epochs}` (Quickstart recipe: batch 64, SGD), "
        f"{turns} interleaved turns; ratios taken within each turn, medians shown.",
        "",
        "| setup | epoch (train + test) | vs 1 process | whole process | vs 1 process | accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        epoch_ratio = ratio({k: v["epoch"] for k, v in results.items()}, name, base)
        process_ratio = ratio({k: v["process"] for k, v in results.items()}, name, base)
        lines.append(f"| {name} | {statistics.median(r['epoch']):.2f} s | {epoch_ratio:.2f}x | {statistics.median(r['process']):.1f} s "
                     f"| {process_ratio:.2f}x | {100 * r['accuracy'][-1]:.1f}% |")
    seconds, size = reduce
    lines += ["", f"One all-reduce of the gradients ({size / 1e6:.2f} MB, gloo over loopback, two processes doing nothing else): "
              f"{seconds * 1e3:.2f} ms; an epoch has {STEPS_PER_EPOCH} steps, so {STEPS_PER_EPOCH * seconds:.2f} s of every epoch is spent averaging gradients."]
    return "\n".join(lines)


def write(table: str) -> None:
    path = ROOT / "docs" / "scaling.md"
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), re.S)
    path.write_text(pattern.sub(lambda _: f"{MARK_BEGIN}\n{table}\n{MARK_END}", text), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="put the table into docs/scaling.md")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.probe:
        return all_reduce_probe()
    table = report(measure(options.epochs, options.turns), options.epochs, options.turns, all_reduce_cost())
    print(table)
    if options.write:
        write(table)


if __name__ == "__main__":
    main()
