"""A test kit for plugin authors: build each of a plugin's components and train a few steps with it
on tiny generated data, checking the contract of docs/plugins.md (return types, logits of shape
(batch, classes), a scalar finite loss, reporters that do not raise). `zoo plugins --check NAME`
runs it on an installed plugin; in a plugin's own tests:

    from zoo.testing import check_plugin
    import my_plugin

    def test_contract():
        assert check_plugin(my_plugin).ok

It works whether or not the plugin is also installed: the in-process copy stands in for it."""

from __future__ import annotations

import os
import tempfile
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import patch  # os.environ set for a block, then as it was

from .errors import DataUnavailable, ZooError, closest, raised_in
from .hookspecs import hookimpl
from .plugins import GROUP, Catalog, PluginInfo, load_catalog, normalize_distribution

TINY = "zoo-check-tiny"  # the generated dataset: 64 + 32 images of 1×28×28, 10 classes
PARTNERS = {"dataset": TINY, "model": "mlp", "loss": "cross-entropy", "optimizer": "sgd", "scheduler": "constant"}


@dataclass
class Check:
    component: str  # kind:name
    ok: bool
    detail: str
    skipped: bool = False  # a dataset whose data is not on this machine (zoo.errors.DataUnavailable): not a failure


@dataclass
class Report:
    plugin: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def failures(self) -> str:
        failed = [c.component for c in self.checks if not c.ok]
        return f"{len(failed)} of {len(self.checks)} check(s) failed ({', '.join(failed)})"

    def text(self) -> str:
        lines = [f"Checking plugin {self.plugin}:"]
        lines += [f"  {'skip' if c.skipped else 'ok  ' if c.ok else 'FAIL'}  {c.component}: {c.detail}" for c in self.checks]
        skipped = sum(c.skipped for c in self.checks)
        ran = len(self.checks) - skipped
        lines.append((f"All {ran} check(s) passed." if self.ok else self.failures() + ".")
                     + (f" {skipped} skipped: the data is not on this machine." if skipped else ""))
        return "\n".join(lines)


class TinyData:
    """An in-process plugin: a dataset small enough to train on in a blink."""

    @hookimpl
    def register_datasets(self, register: Any) -> None:
        register(TINY, tiny_splits, help="64 + 32 generated 1×28×28 images, 10 classes (zoo.testing)")


def tiny_splits(params: Any) -> Any:
    import torch

    from .contracts import DatasetSplits
    from .data import TensorSplit

    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> TensorSplit:
        labels = torch.randint(0, 10, (n,), generator=generator)
        images = (torch.rand(n, 1, 28, 28, generator=generator) * 60).to(torch.uint8)
        for i, label in enumerate(labels.tolist()):
            images[i, 0, 2 * label + 2 : 2 * label + 6, 4:24] += 180
        return TensorSplit(images, labels)

    return DatasetSplits(split(64), split(32), [str(k) for k in range(10)], (1, 28, 28))


def check_plugin(plugin: str | object, env: dict[str, str] | None = None, data_dir: str | Path | None = None) -> Report:
    """Check every component of `plugin`: an installed plugin's entry-point or distribution name, or
    the plugin object itself (a module with hooks), loaded in-process. data_dir: the folder its datasets read (those
    that declare one with zoo.data_location), for a dataset whose data no default setting finds."""
    catalog, info = _load(plugin, dict(os.environ) if env is None else env)
    report = Report(f"{info.name} ({info.source})")
    if info.status == "failed":
        report.checks += [Check("load", False, error) for error in info.errors]
    report.checks += [Check("load", False, f"warning: {w}") for w in info.warnings]
    with tempfile.TemporaryDirectory(prefix="zoo-check-") as folder, _strict():
        for number, entry in enumerate(info.components):
            kind, name = entry.split(":", 1)
            report.checks.append(_check_component(catalog, kind, f"{info.name}:{name}", Path(folder) / f"run-{number}", data_dir))
    if not report.checks:
        report.checks.append(Check("load", False, "the plugin registers no component"))
    return report


def _load(plugin: str | object, env: dict[str, str]) -> tuple[Catalog, PluginInfo]:
    env = {k: v for k, v in env.items() if k not in ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_STRICT_PLUGINS")}
    if isinstance(plugin, str):
        catalog = load_catalog(env={**env, "ZOO_LOAD_PLUGINS": plugin}, extra_plugins=[(TINY, TinyData())])
        found = [p for p in catalog.plugins if plugin == p.name or normalize_distribution(p.distribution) == normalize_distribution(plugin)]
        if not found:
            raise not_a_plugin(plugin, [name for p in catalog.plugins if p.name != TINY for name in (p.name, p.distribution)])
        return catalog, found[0]
    name = getattr(plugin, "__name__", type(plugin).__name__).split(".")[0]
    installed = load_catalog(env={**env, "ZOO_LOAD_PLUGINS": ""})
    entry = next((p.name for p in installed.plugins if p.name == name), name)
    catalog = load_catalog(env={**env, "ZOO_LOAD_PLUGINS": ""}, extra_plugins=[(entry, plugin), (TINY, TinyData())])
    return catalog, next(p for p in catalog.plugins if p.name == entry)


def not_a_plugin(name: str, known: list[str]) -> ZooError:
    """No plugin by that name: an installed distribution of that name that declares no `zoo` entry point (the
    usual slip: a missing or misnamed [project.entry-points.zoo] table), else the nearest plugin name."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(name)
        if any(ep.group == GROUP for ep in dist.entry_points):
            raise PackageNotFoundError(name)  # it is a plugin: the name alone was wrong
    except (PackageNotFoundError, ValueError):
        hint = closest(name, known)
        return ZooError(f"No installed plugin is called {name!r} (entry point or distribution)" + (f"; did you mean {hint}?" if hint else ";")
                        + " `zoo plugins` lists them, `zoo install PACKAGE` adds one.")
    groups = sorted({ep.group for ep in dist.entry_points})
    return ZooError(f"{dist.metadata['Name']} {dist.version} is installed but declares no entry point in the group {GROUP!r}"
                    + (f" (it declares: {', '.join(groups)})" if groups else "") + ", so zoo does not see it as a plugin. "
                    f"Add to its pyproject.toml `[project.entry-points.{GROUP}]` with a line `my-plugin = \"my_module\"` (see docs/plugins.md) and install it again.")


def _strict() -> ContextManager[Any]:
    """Plugin errors as they are (and a failing reporter fatal), so the report shows the real error."""
    return patch.dict(os.environ, {"ZOO_STRICT_PLUGINS": "1"})


def _check_component(catalog: Catalog, kind: str, qualified: str, out: Path, data_dir: str | Path | None = None) -> Check:
    """Build it and train one epoch of 4 steps with zoo's own components around it."""
    from .api import run

    entry = f"{kind}:{qualified.split(':', 1)[1]}"
    if kind == "dataset":
        return _check_dataset(catalog, qualified, entry, data_dir)
    chosen: dict[str, Any] = {k: v for k, v in PARTNERS.items()}
    chosen["reporters"] = [qualified] if kind == "reporter" else []
    if kind != "reporter":
        chosen[kind] = qualified
    try:
        result = run(catalog=catalog, epochs=1, batch_size=16, log_every=1, out=out, **chosen)
    except Exception as error:  # the check reports every failure, of any kind, and where in the plugin's code it was raised
        said = f"{type(error).__name__}: {' '.join(str(error).split())}"
        return Check(entry, False, said if " (at " in said else said + raised_in(error, catalog.registry.get(kind, qualified).factory))
    return Check(entry, True, f"built; 4 training steps on {TINY} (test accuracy {result.epochs[-1].test_accuracy:.0%})")


def _check_dataset(catalog: Catalog, qualified: str, entry: str, data_dir: str | Path | None = None) -> Check:
    """Build it with its default settings (and `data_dir` where it reads a folder) and check its samples (zoo.samples)."""
    from .api import resolve
    from .build import build_dataset
    from .identity import location_fields
    from .samples import check_samples

    try:
        reads_a_folder = "data_dir" in location_fields(catalog.registry.get("dataset", qualified).params).values()
        _, resolved = resolve(catalog=catalog, dataset=qualified, model="mlp", reporters=[], data_dir=data_dir if reads_a_folder else None)
        splits = build_dataset(resolved.dataset)
        check_samples(f"dataset {qualified!r}", splits)
    except DataUnavailable as error:
        return Check(entry, True, f"not checked, its data is not on this machine: {' '.join(str(error).split())}", skipped=True)
    except Exception as error:
        return Check(entry, False, f"{type(error).__name__}: {' '.join(str(error).split())}")
    return Check(entry, True, f"built; {len(splits.train)} + {len(splits.test)} samples of {tuple(splits.input_shape)}, "
                              f"{len(splits.classes)} classes")
