"""`make models`: train the models zoo ships and store them in zoo/shipped/ with their cards.

Each is trained from scratch with its recipe on the real data (seed 0, as the recipe says), then
stored by zoo.save(..., shipped=True), which records its accuracy, settings, versions and SHA-256.
An existing shipped model of that name is replaced only once the new one is trained.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import zoo
from zoo.store import shipped_root

#: name -> (model, dataset, recipe)
SHIPPED = {"mlp-512-fashion-mnist": ("mlp-512", "fashion-mnist", "tuned")}
#: Settings over the recipe's. None: a model trained on standardised pixels (the tuned recipe's dataset.normalize)
#: records their mean and std in config.json, and `zoo predict IMAGE` and `zoo export` apply or carry them.
SETS: list[str] = []


def ship(name: str, model: str, dataset: str, recipe: str, run_dir: Path | None) -> None:
    if run_dir is None:
        run_dir = Path(tempfile.mkdtemp(prefix=f"zoo-ship-{name}-")) / "run"
        zoo.run(recipe=recipe, model=model, dataset=dataset, out=run_dir, sets=SETS, drop_reporters=["progress"])
    old = shipped_root() / name
    if old.exists():
        shutil.rmtree(old)
    stored = zoo.save(run_dir, name, shipped=True)
    card = zoo.models()
    accuracy = next(r.card.metrics.accuracy for r in card if r.stored.folder == stored.folder and r.card)
    print(f"{name}: {model} on {dataset} ({recipe}), test accuracy {accuracy:.2%}, stored in {stored.folder}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(SHIPPED), help="which models (default: all)")
    parser.add_argument("--from-run", type=Path, help="store this finished run instead of training (one name only)")
    args = parser.parse_args()
    for name in args.names:
        ship(name, *SHIPPED[name], args.from_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
