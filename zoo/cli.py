"""The `zoo` command: a thin shell over zoo.api. Errors the user can fix print one paragraph and
exit 2; Ctrl-C exits 130; neither shows a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__, api
from .errors import ZooError
from .listing import list_entries, normalize_kind, plugin_entries
from .presets import PLACEHOLDER

DEVICES = ["auto", "cpu", "cuda", "mps"]


class UserError(click.ClickException):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ZooGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZooError as error:
            raise UserError(str(error), error.exit_code) from None
        except KeyboardInterrupt:
            raise UserError("Interrupted (Ctrl-C); the run stopped.", 130) from None


registry_option = click.option(
    "--registry",
    "registry_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Another registry file of presets and recipes (repeatable; also ZOO_REGISTRY).",
)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="zoo", message="%(prog)s %(version)s")
def cli() -> None:
    """A plugin-based model zoo for PyTorch: the Quickstart's training loop, with every piece swappable.

    \b
    zoo run --model mlp-512 --dataset fashion-mnist   train as the PyTorch Quickstart does
    zoo list                                          every model, dataset, loss, optimizer, reporter
    zoo plugins                                       the plugins that provide them
    zoo predict RUN_DIR --index 0                     what a trained model says about one test image
    """


@cli.command()
@click.option("--recipe", help="A recipe from the registry (default: quickstart).")
@click.option("--model", help="Model name or preset, e.g. mlp-512.")
@click.option("--dataset", help="Dataset name, e.g. fashion-mnist.")
@click.option("--loss", help="Loss name, e.g. cross-entropy.")
@click.option("--optimizer", help="Optimizer name, e.g. sgd.")
@click.option("--scheduler", help="Learning-rate schedule: constant, step, cosine, one-cycle.")
@click.option("--reporter", "reporters", multiple=True, help="Reporter (repeatable); replaces the recipe's list.")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--seed", type=int)
@click.option("--shuffle/--no-shuffle", default=None, help="Reshuffle the training data each epoch.")
@click.option("--device", type=click.Choice(DEVICES))
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), help="bf16: bfloat16 autocast, faster on CPUs and GPUs that support it.")
@click.option("--log-every", type=int, help="Print the loss every N steps (default 100).")
@click.option("--predict-index", type=int, help="Test sample to predict at the end (default 0).")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default runs/<time>-<model>-<dataset>).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where to look for the data first (also ZOO_DATA_DIR).")
@click.option("--no-verify", is_flag=True, help="Use data files whose checksums differ from the real dataset's.")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="A component setting, e.g. --set model.hidden=[1024,256] (TOML values; repeatable).")
@click.option("--checkpoint-every", type=int, help="Also checkpoint every N steps (always at each epoch end).")
@click.option("--keep-checkpoints", type=int, help="How many checkpoints to keep (default 2).")
@click.option("--deterministic/--no-deterministic", default=None, help="torch.use_deterministic_algorithms (see docs/reliability.md).")
@click.option("--resume", metavar="RUN_DIR|auto", help="Continue a run from its newest valid checkpoint; auto: the newest run with these settings.")
@click.option("--dry-run", is_flag=True, help="Print the resolved configuration as JSON and stop.")
@registry_option
def run(recipe: str | None, reporters: tuple[str, ...], data_dir: Path | None, no_verify: bool, sets: tuple[str, ...], resume: str | None, dry_run: bool, registry_files: tuple[Path, ...], **settings: Any) -> None:
    """Train and test a model, printing the Quickstart's log; writes a run directory."""
    sets_list = list(sets)
    if data_dir is not None:
        sets_list.insert(0, f"dataset.data_dir={json.dumps(str(data_dir))}")
    if no_verify:
        sets_list.insert(0, "dataset.verify=false")
    if reporters:
        settings["reporters"] = list(reporters)
    if dry_run:
        _, resolved = api.resolve(recipe=recipe, sets=sets_list, registry_files=registry_files, **settings)
        click.echo(json.dumps(resolved.to_json(), indent=2))
        return
    result = api.run(recipe=recipe, sets=sets_list, registry_files=registry_files, resume=resume, **settings)
    click.echo(f"Run saved in {result.run_dir}", err=True)


@cli.command("list")
@click.argument("kind", required=False)
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (schema in docs/plugins.md).")
@registry_option
def list_command(kind: str | None, pattern: str | None, as_json: bool, registry_files: tuple[Path, ...]) -> None:
    """Every registered component, preset and recipe, with the plugin that provides it.

    KIND is one of datasets, models, losses, optimizers, schedulers, reporters, recipes; PATTERN may use
    wildcards: zoo list models 'mlp-*'.
    """
    normalized = normalize_kind(kind) if kind else None
    if kind and normalized is None:
        if pattern is not None:
            raise ZooError(f"Unknown kind {kind!r}; the kinds are datasets, models, losses, optimizers, schedulers, reporters, recipes.")
        kind, pattern = None, kind
    entries = list_entries(api.catalog(registry_files), normalized, pattern)
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    click.echo(_format_list(entries))


def _value(value: Any) -> str:
    """TOML-ish and short: [512, 512], <width> for a placeholder, true/false."""
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return " ".join(f"{k}={_value(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: f"<{m.group(1)}>", value)
    return str(value)


def _format_list(entries: dict[str, Any]) -> str:
    rows: dict[str, list[tuple[str, str, str]]] = {}
    for c in entries["components"]:
        flag = {"conflict": "  [CONFLICT: unusable]", "plugin-has-errors": "  [plugin has errors]"}.get(c["status"], "")
        rows.setdefault(c["kind"], []).append((c["name"], f"{c['distribution']} {c['version']} ({c['plugin']})", c["help"] + flag))
    for p in entries["presets"]:
        results = "; ".join(f"{key}: {r['accuracy']:.1%} in {r['seconds']:.0f} s" for key, r in p["results"].items())
        text = p["help"] + (f" (measured {results})" if results else "")
        rows.setdefault(p["kind"], []).append((p["name"], f"preset: {p['component']} {_value(p['params'])}".rstrip(), text))
    titles = {"dataset": "Datasets", "model": "Models", "loss": "Losses", "optimizer": "Optimizers", "scheduler": "Schedulers", "reporter": "Reporters"}
    lines: list[str] = []
    for kind, title in titles.items():
        if kind not in rows:
            continue
        name_width = max(len(r[0]) for r in rows[kind])
        source_width = max(len(r[1]) for r in rows[kind])
        lines.append(f"{title}:")
        lines += [f"  {name:<{name_width}}  {source:<{source_width}}  {text}".rstrip() for name, source, text in rows[kind]]
        lines.append("")
    if entries["recipes"]:
        lines.append("Recipes:")
        width = max(len(r["name"]) for r in entries["recipes"])
        for r in entries["recipes"]:
            settings = {k: v for k, v in r["settings"].items() if k != "params"}
            params = {f"{section}.{k}": v for section, values in r["settings"].get("params", {}).items() for k, v in values.items()}
            lines.append(f"  {r['name']:<{width}}  {r['help']}".rstrip())
            lines.append(f"  {'':<{width}}  {_value({**settings, **params})}")
        lines.append("")
    if not lines:
        lines.append("Nothing matches.")
    for failed in entries["failed_plugins"]:
        lines.append(f"! plugin {failed['name']} ({failed['distribution']} {failed['version']}) has errors: {failed['errors'][0]} (see `zoo plugins`)")
    return "\n".join(lines).rstrip()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """The installed plugins: distribution, version, hooks, status and any load error."""
    entries = plugin_entries(api.catalog())
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    header = ("PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "HOOKS")
    table = [header] + [(e["name"], e["distribution"], e["version"], e["status"], ", ".join(e["hooks"]) or "-") for e in entries]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        entry = next((e for e in entries if e["name"] == row[0]), None)
        for error in (entry or {}).get("errors", []):
            click.echo(f"    error: {error}")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--index", type=int, default=0, show_default=True, help="Index of the test sample.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where to look for the data first.")
@click.option("--no-verify", is_flag=True, help="Use data files whose checksums differ from the real dataset's.")
@registry_option
def predict(run_dir: Path, index: int, data_dir: Path | None, no_verify: bool, registry_files: tuple[Path, ...]) -> None:
    """Predict one test sample with a finished run's weights: Predicted/Actual and each class's probability."""
    prediction = api.predict(run_dir, index, data_dir=data_dir, verify=not no_verify, registry_files=registry_files)
    click.echo("\n".join(prediction.lines()))


def main() -> None:
    cli(prog_name="zoo")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
