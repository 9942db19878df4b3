"""`python bench/ablation.py`: what each setting of the `tuned` recipe buys, measured side by side.

Each row is `zoo run --recipe tuned` with one setting changed (e.g. dropout added), once per seed, every
run between two reference epochs (bench/reference.py) timed in the same turn. The rows interleave seed
by seed, so the machine's drift falls on all of them alike. Prints a markdown table for docs/performance.md.

    python bench/ablation.py [--seeds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402
import reference  # noqa: E402

#: Row label -> the arguments that change one setting of the recipe.
VARIANTS: dict[str, list[str]] = {
    "the recipe": [],
    "pixels in [0, 1] (no standardisation)": ["--set", "dataset.normalize=false"],
    "label smoothing 0.1": ["--set", "loss.label_smoothing=0.1"],
    "no label smoothing": ["--set", "loss.label_smoothing=0"],
    "batch 128": ["--batch-size", "128"],
    "batch 512": ["--batch-size", "512"],
    "dropout 0.1": ["--set", "model.dropout=0.1"],
    "random shift 1 px": ["--set", "dataset.shift=1"],
    "30 epochs": ["--epochs", "30"],
}


def measure(root: Path, seeds: tuple[int, ...]) -> dict[str, list[tuple[float, float]]]:
    """Per variant, (test accuracy, wall in reference epochs) per seed."""
    loop = reference.ReferenceLoop(reference.load_split(root, True), reference.load_split(root, False))
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for seed in seeds:
        for name, args in VARIANTS.items():
            print(f"  seed {seed}: {name}", file=sys.stderr, flush=True)
            before = loop.epoch()
            seconds, metrics = bench.zoo_process("--recipe", "tuned", "--seed", str(seed), *args)
            unit = (before + loop.epoch()) / 2
            rows[name].append((metrics[-1]["test_accuracy"], seconds / unit))
    return rows


def table(rows: dict[str, list[tuple[float, float]]]) -> str:
    base = statistics.fmean(a for a, _ in rows["the recipe"])
    base_cost = statistics.median(r for _, r in rows["the recipe"])
    lines = ["| `zoo run --recipe tuned` with | test accuracy (mean) | each seed | vs the recipe | wall in reference epochs (median) |",
             "|---|---:|---|---:|---:|"]
    for name, samples in rows.items():
        accuracy = statistics.fmean(a for a, _ in samples)
        cost = statistics.median(r for _, r in samples)
        each = ", ".join(f"{a * 100:.2f}" for a, _ in samples)
        delta = "" if name == "the recipe" else f"{(accuracy - base) * 100:+.2f} points, {cost - base_cost:+.1f} ref. epochs"
        lines.append(f"| {name} {' '.join(f'`{a}`' for a in VARIANTS[name] if a != '--set')} | {accuracy * 100:.2f}% | {each} | {delta} | {cost:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1, help="runs per variant, seeds 0, 1, ...")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        rows = measure(bench.torchvision_root(Path(workdir)), tuple(range(args.seeds)))
    print(table(rows))


if __name__ == "__main__":
    main()
