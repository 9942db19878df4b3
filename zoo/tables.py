"""How zoo's listings read as text: `zoo list` (plain off a terminal, a rich table on one), `zoo plugins`,
`zoo runs` and `zoo runs --compare`. The data comes from zoo.listing and zoo.runs; the CLI only prints."""

from __future__ import annotations

from typing import Any

from .presets import display
from .runs import Missing
from .terminal import one_line, printable


def _value(value: Any) -> str:
    """TOML-ish and short: [512, 512], <width> for a placeholder, true/false."""
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return " ".join(f"{k}={_value(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return display(value)
    return "none" if value is None else str(value)


def _result(key: str, r: dict[str, Any]) -> str:
    """fashion-mnist/tuned: 91.08% (3 seeds: 90.97%-91.20%) in 48 s, 19.2 reference epochs, fp32 on AMD EPYC, 2 cores.
    Two decimals: a target such as 91.0% is met or not by a few hundredths."""
    accuracies = r.get("accuracies") or []
    spread = f" ({len(accuracies)} seeds: {min(accuracies):.2%}-{max(accuracies):.2%})" if len(accuracies) > 1 else ""
    text = f"{key}: {r['accuracy']:.2%}{spread} in {r['seconds']:.0f} s"
    if r.get("reference_epochs") is not None:
        text += f", {r['reference_epochs']:.1f} reference epochs"
    if r.get("where"):
        text += f", {r['precision'] or '?'} on {r['where']}"
    return text


def measured(all_results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The results of this kind of machine where there are some; else every one, with its machine."""
    shown = []
    for key, results in all_results.items():
        here = [r for r in results if r["this_machine"]]
        shown += [_result(key, r) for r in here or results]
    return shown


def _measured(all_results: dict[str, list[dict[str, Any]]]) -> str:
    """One line per result below the preset's description (one line for all of them ran to 500 characters)."""
    return "".join(f"\nmeasured {line}" for line in measured(all_results))


def recipe_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A recipe's settings flat, as the command line names them: epochs, ..., then optimizer.momentum, ..."""
    params = settings.get("params", {})
    return {**{k: v for k, v in settings.items() if k != "params"},
            **{f"{section}.{k}": v for section, values in params.items() for k, v in values.items()}}


def _rows(entries: dict[str, Any]) -> dict[str, list[tuple[str, str, str]]]:
    """Per kind: (name, where it comes from, description)."""
    rows: dict[str, list[tuple[str, str, str]]] = {}
    for c in entries["components"]:
        flag = {"conflict": "  [CONFLICT: use a qualified name]", "plugin-has-errors": "  [plugin has errors]"}.get(c["status"], "")
        rows.setdefault(c["kind"], []).append((c["name"], f"{c['distribution']} {c['version']} ({c['plugin']})", c["help"] + flag))
    for p in entries["presets"]:
        text = p["help"] + _measured(p["all_results"])
        rows.setdefault(p["kind"], []).append((p["name"], f"preset: {p['component']} {_value(p['params'])}".rstrip(), text))
    for r in entries["recipes"]:
        rows.setdefault("recipe", []).append((r["name"], _value(recipe_settings(r["settings"])), r["help"]))
    return rows


TITLES = {"dataset": "Datasets", "model": "Models", "loss": "Losses", "optimizer": "Optimizers", "scheduler": "Schedulers", "reporter": "Reporters", "recipe": "Recipes"}


def print_rich_list(entries: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    for kind, rows in _rows(entries).items():
        table = Table(title=TITLES[kind], title_justify="left", expand=False)
        for column in ("name", "from", "description"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(printable(cell)) for cell in row))
        console.print(table)
    for failed in entries["failed_plugins"]:
        console.print(Text.assemble((printable(f"! plugin {failed['name']} ({failed['distribution']} {failed['version']}) has errors:"), "red"),
                                    printable(f" {failed['errors'][0]} (see `zoo plugins`)")))
    for line in _conflict_lines(entries):
        console.print(printable(line), markup=False, highlight=False)


def format_list(entries: dict[str, Any]) -> str:
    rows = _rows(entries)
    lines: list[str] = []
    for kind, title in TITLES.items():
        if kind == "recipe":
            continue
        if kind not in rows:
            continue
        name_width = max(len(r[0]) for r in rows[kind])
        source_width = max(len(r[1]) for r in rows[kind])
        lines.append(f"{title}:")
        for name, source, text in rows[kind]:
            first, *more = text.split("\n")
            lines.append(f"  {name:<{name_width}}  {source:<{source_width}}  {first}".rstrip())
            lines += [f"  {'':<{name_width}}  {'':<{source_width}}  {line}" for line in more]
        lines.append("")
    if "recipe" in rows:
        lines.append("Recipes:")
        width = max(len(name) for name, _, _ in rows["recipe"])
        for name, settings, text in rows["recipe"]:
            lines.append(f"  {name:<{width}}  {text}".rstrip())
            lines.append(f"  {'':<{width}}  {settings}")
        lines.append("")
    if not lines:
        lines.append("Nothing matches.")
    for failed in entries["failed_plugins"]:
        lines.append(f"! plugin {failed['name']} ({failed['distribution']} {failed['version']}) has errors: {failed['errors'][0]} (see `zoo plugins`)")
    lines += _conflict_lines(entries)
    return "\n".join(lines).rstrip()


def _conflict_lines(entries: dict[str, Any]) -> list[str]:
    """Names refused or shared at load, and ZOO_*_PLUGINS names that match nothing."""
    lines = [f"! plugin {c['name']} ({c['distribution']} {c['version']}) conflicts: {error}"
             for c in entries.get("conflicting_plugins", []) for error in c["errors"]]
    return lines + [f"! {warning}" for warning in entries.get("warnings", [])]


def _aligned(table: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]


def format_plugins(entries: list[dict[str, Any]]) -> str:
    """One row per plugin (name, distribution, version, status, hooks), its errors below it."""
    header = ("PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "HOOKS")
    rows = [(e["name"], e["distribution"], e["version"], e["status"], ", ".join(e["hooks"]) or "-") for e in entries]
    lines = _aligned([header, *rows])
    out = [lines[0]]
    for line, entry in zip(lines[1:], entries):
        label = "conflict" if entry["status"] == "conflicting" else "error"
        out += [line, *(f"    {label}: {error}" for error in entry["errors"]), *(f"    warning: {w}" for w in entry.get("warnings", []))]
    return "\n".join(out)


def format_comparison(a: str, b: str, comparison: Any) -> str:
    """The settings that differ, then both runs' accuracy and test loss per epoch."""
    lines = [f"A: {a}", f"B: {b}", "", "Settings that differ:" if comparison.differences else "The settings are the same."]
    width = max((len(key) for key, _, _ in comparison.differences), default=0)
    shown = [(key, *(value if isinstance(value, Missing) else _value(value) for value in (left, right)))
             for key, left, right in comparison.differences]  # "(not recorded)", "(none: ...)" as they are
    lines += [f"  {key:<{width}}  A: {left}  B: {right}" for key, left, right in shown]
    lines += ["", "epoch  A accuracy  B accuracy  A test loss  B test loss"]
    for epoch, left, right in comparison.curves:
        cells = [f"{100 * m['test_accuracy']:9.2f}%" if m else "         -" for m in (left, right)]
        cells += [f"{m['test_loss']:11.6f}" if m else "          -" for m in (left, right)]
        lines.append(f"{epoch:>5}  {cells[0]}  {cells[1]}  {cells[2]}  {cells[3]}")
    return "\n".join(lines)


def format_runs(summaries: list[Any]) -> str:
    """One row per run directory; a damaged one says so, and why, below the table; a run that changed settings
    of its recipe has its recipe marked * and the settings listed last."""
    header = ("RUN", "MODEL", "DATASET", "RECIPE", "SEED", "EPOCHS", "BEST", "TRAIN s", "WHEN")
    rows = [
        (s.path.name, s.model, s.dataset, s.recipe + ("*" if s.changed_from_recipe else ""), "?" if s.seed is None else str(s.seed),
         f"{s.epochs_done}/{s.epochs_planned}" + (" (damaged)" if s.problem else "" if s.finished else " (diverged)" if s.diverged else " (unfinished)"),
         f"{s.best_accuracy:.2%}" if s.best_accuracy is not None else "-", f"{s.train_seconds:.1f}", s.created.strftime("%Y-%m-%d %H:%M"))
        for s in summaries
    ]
    damaged = [f"! {s.path.name} is damaged: {s.problem}." for s in summaries if s.problem]
    changed = [f"  {s.path.name}: " + one_line(", ".join(f"{key}={_value(value)}" for key, value in s.changed_from_recipe.items()))
               for s in summaries if s.changed_from_recipe]
    return "\n".join([*_aligned([header, *rows]), *damaged, *(["", "* changed from its recipe:", *changed] if changed else [])])


def format_models(rows: list[Any]) -> str:
    """`zoo models`: name, model, dataset, recipe, accuracy, parameters, size, where (zoo.store.Listed rows)."""
    if not rows:
        return "No trained models yet: `zoo save RUN NAME` stores a finished run under a name."
    table = [("name", "model", "dataset", "recipe", "accuracy", "params", "size", "from")]
    for row in rows:
        card, origin = row.card, row.stored.origin
        if card is None:
            table.append((row.stored.name, "damaged", "", "", "", "", "", origin))
            continue
        accuracy = f"{card.metrics.accuracy:.2%}" if card.metrics.accuracy is not None else "-"
        changed = card.config.get("changed_from_recipe")
        recipe = card.recipe + ("*" if changed else "" if isinstance(changed, dict) else "?")
        table.append((card.name, card.model, card.dataset, recipe, accuracy, f"{card.parameters:,}", (f"{card.size / 1e6:.1f} MB" if card.size >= 1e6 else f"{card.size / 1e3:.0f} kB"), origin))
    widths = [max(len(str(line[i])) for line in table) for i in range(len(table[0]))]
    lines = ["  ".join(f"{cell:<{w}}" for cell, w in zip(line, widths)).rstrip() for line in table]
    problems = [f"! {row.problem}" for row in rows if row.problem]
    recipes = [line[3] for line in table[1:]]
    notes = ["* trained otherwise than its recipe: `zoo models --json` lists what changed"] if any(r.endswith("*") for r in recipes) else []
    if any(r.endswith("?") for r in recipes):
        notes.append("? not known to match its recipe (saved by an older zoo, or its recipe did not resolve when it trained); its card.json has every setting")
    return "\n".join(lines + ([""] + notes if notes else []) + problems)
