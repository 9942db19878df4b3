"""Discovery and isolation, with real installed entry points and with in-process plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

import zoo
from zoo import hookspecs
from zoo.errors import ZooError
from zoo.plugins import load_catalog

BUILTINS = {"builtin-datasets", "builtin-models", "builtin-losses", "builtin-optimizers", "builtin-reporters"}


class DuplicateMLP:
    """An in-process plugin that claims a name the built-ins own."""

    @zoo.hookimpl
    def register_models(self, register):
        register("mlp", lambda params, shape, n: None)
        register("other", lambda params, shape, n: None)


class RaisingRegistration:
    @zoo.hookimpl
    def register_losses(self, register):
        raise RuntimeError("cannot register today")


def test_builtins_load_through_the_entry_point_group() -> None:
    catalog = load_catalog(env={})
    loaded = {p.name: p for p in catalog.plugins}
    assert BUILTINS <= set(loaded)
    for name in BUILTINS:
        assert loaded[name].status == "loaded" and loaded[name].distribution == "zoo" and loaded[name].builtin
    assert catalog.registry.get("model", "mlp").owner.plugin == "builtin-models"
    assert {"fashion-mnist", "mnist"} <= set(catalog.registry.names("dataset"))


def test_every_hook_is_called_by_some_builtin_or_fixture_plugin(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    hooks = {name for name in dir(hookspecs) if name.startswith("register_")}
    catalog = load_catalog(env={"ZOO_LOAD_PLUGINS": "demo"})
    used = {hook for p in catalog.plugins if p.status == "loaded" for hook in p.hooks}
    assert hooks == used


def test_a_plugin_that_fails_to_import_is_isolated_and_reported(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    catalog = load_catalog(env={})
    broken = next(p for p in catalog.plugins if p.name == "broken")
    assert (broken.status, broken.distribution, broken.version) == ("failed", "zoo-broken-plugin", "0.0.1")
    assert "ImportError" in broken.errors[0] and "does-not-exist" in broken.errors[0]
    assert catalog.registry.get("model", "linear").owner.distribution == "zoo-demo-plugin"
    assert catalog.registry.get("model", "mlp")


def test_strict_mode_reraises(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    with pytest.raises(ImportError, match="does-not-exist"):
        load_catalog(env={"ZOO_STRICT_PLUGINS": "1"})


def test_load_list_selects_third_party_plugins_only(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    status = {p.name: p.status for p in load_catalog(env={"ZOO_LOAD_PLUGINS": "demo"}).plugins}
    assert status["demo"] == "loaded" and status["broken"] == "not-selected"
    assert all(status[name] == "loaded" for name in BUILTINS)
    status = {p.name: p.status for p in load_catalog(env={"ZOO_LOAD_PLUGINS": ""}).plugins}
    assert status["demo"] == status["broken"] == "not-selected"


def test_disable_list_skips_plugins_before_importing_them(plugin_site: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    marker = tmp_path / "imported"
    monkeypatch.setenv("ZOO_BROKEN_MARKER", str(marker))
    catalog = load_catalog(env={"ZOO_DISABLE_PLUGINS": "broken,builtin-losses"})
    status = {p.name: p.status for p in catalog.plugins}
    assert status["broken"] == "disabled" and status["builtin-losses"] == "disabled"
    assert not marker.exists()
    assert catalog.registry.names("loss") == []
    load_catalog(env={})
    assert marker.exists()  # the marker works: without the deny list the module is imported


def test_a_duplicate_name_is_reported_for_both_owners_and_used_by_neither() -> None:
    catalog = load_catalog(env={}, extra_plugins=[("dup", DuplicateMLP())])
    plugins = {p.name: p for p in catalog.plugins}
    for name in ("dup", "builtin-models"):
        assert plugins[name].status == "failed"
        assert "registered by both" in plugins[name].errors[0]
    assert catalog.registry.get("model", "other")  # the plugin's other names still work
    with pytest.raises(ZooError, match=r"plugin 'builtin-models' \(zoo .*\) and plugin 'dup'"):
        catalog.resolve("model", "mlp")


def test_a_duplicate_name_in_strict_mode_raises() -> None:
    with pytest.raises(ZooError, match="registered by both"):
        load_catalog(env={"ZOO_STRICT_PLUGINS": "1"}, extra_plugins=[("dup", DuplicateMLP())])


def test_a_plugin_whose_hook_raises_is_recorded() -> None:
    catalog = load_catalog(env={}, extra_plugins=[("raiser", RaisingRegistration())])
    raiser = next(p for p in catalog.plugins if p.name == "raiser")
    assert raiser.status == "failed" and "register_losses failed: RuntimeError: cannot register today" in raiser.errors[0]
    assert catalog.registry.get("loss", "cross-entropy")


def test_installed_plugin_ships_presets(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    catalog = load_catalog(env={"ZOO_LOAD_PLUGINS": "demo"})
    resolved = catalog.resolve("optimizer", "adam-fast")
    assert resolved.component.owner.distribution == "zoo-demo-plugin" and resolved.params == {"lr": 0.01}
