"""Discovery and isolation, with real installed entry points and with in-process plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    assert broken.errors[0].endswith("zoo_broken/__init__.py:10)")  # where: the plugin's line that raised
    assert catalog.registry.get("model", "linear").owner.distribution == "zoo-demo-plugin"
    assert catalog.registry.get("model", "mlp")
    from zoo.listing import nothing_matches

    said = str(nothing_matches(catalog, None, "cnn"))  # `zoo list cnn` where the plugin that has it failed
    assert "Plugins that failed to load may have provided it: broken (zoo-broken-plugin 0.0.1): " in said and "does-not-exist" in said


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


def test_a_builtin_name_is_refused_to_a_third_party_plugin_and_the_builtin_keeps_working() -> None:
    catalog = load_catalog(env={}, extra_plugins=[("dup", DuplicateMLP())])
    plugins = {p.name: p for p in catalog.plugins}
    assert plugins["builtin-models"].status == "loaded" and not plugins["builtin-models"].errors
    assert plugins["dup"].status == "conflicting"
    assert "registers the model 'mlp', a name of zoo's own" in plugins["dup"].errors[0] and "Rename it" in plugins["dup"].errors[0]
    assert catalog.resolve("model", "mlp").component.owner.plugin == "builtin-models"
    assert catalog.registry.get("model", "other").owner.plugin == "dup"  # the plugin's other names still work
    assert "dup:mlp" not in catalog.registry.qualified["model"]


def test_a_builtin_name_taken_in_strict_mode_raises() -> None:
    with pytest.raises(ZooError, match="a name of zoo's own"):
        load_catalog(env={"ZOO_STRICT_PLUGINS": "1"}, extra_plugins=[("dup", DuplicateMLP())])


class ExtrasAdamW:
    @zoo.hookimpl
    def register_optimizers(self, register):
        register("adamw", lambda params, parameters: "extras")


class MoreAdamW:
    @zoo.hookimpl
    def register_optimizers(self, register):
        register("adamw", lambda params, parameters: "more")


def test_two_third_party_plugins_with_one_name_stay_usable_by_qualified_name() -> None:
    catalog = load_catalog(env={}, extra_plugins=[("extras", ExtrasAdamW()), ("more", MoreAdamW())])
    plugins = {p.name: p for p in catalog.plugins}
    assert plugins["extras"].status == plugins["more"].status == "conflicting"
    assert catalog.resolve("optimizer", "extras:adamw").component.factory(None, None) == "extras"
    assert catalog.resolve("optimizer", "more:adamw").component.factory(None, None) == "more"
    with pytest.raises(ZooError, match=r"registered by both plugin 'extras' .* and plugin 'more' .*extras:adamw or more:adamw"):
        catalog.resolve("optimizer", "adamw")
    assert catalog.resolve("optimizer", "sgd")  # nothing that worked before broke


class PresetNamed:
    @zoo.hookimpl
    def register_models(self, register):
        register("mlp-512", lambda params, shape, n: None)
        register("mlp-77", lambda params, shape, n: None)


def test_a_component_named_like_a_zoo_preset_is_refused_at_load() -> None:
    catalog = load_catalog(env={}, extra_plugins=[("clash", PresetNamed())])
    clash = next(p for p in catalog.plugins if p.name == "clash")
    assert clash.status == "conflicting" and "zoo's own preset 'mlp-512'" in clash.errors[0]
    assert "zoo's own preset 'mlp-<width>'" in clash.errors[1]  # a pattern preset is zoo's too
    resolved = catalog.resolve("model", "mlp-512")
    assert resolved.component.owner.plugin == "builtin-models" and resolved.preset == "mlp-512"


def test_a_component_named_like_a_third_party_preset_is_flagged_at_load(tmp_path: Path) -> None:
    registry = tmp_path / "mine.toml"
    registry.write_text('[optimizers.adamw]\ncomponent = "sgd"\nparams = { lr = 0.1 }\n')
    catalog = load_catalog(env={}, registry_files=[registry], extra_plugins=[("extras", ExtrasAdamW())])
    extras = next(p for p in catalog.plugins if p.name == "extras")
    assert extras.status == "conflicting" and f"also a preset in {registry}" in extras.errors[0]


def test_a_plugin_whose_hook_raises_is_recorded() -> None:
    catalog = load_catalog(env={}, extra_plugins=[("raiser", RaisingRegistration())])
    raiser = next(p for p in catalog.plugins if p.name == "raiser")
    assert raiser.status == "failed" and "register_losses failed: RuntimeError: cannot register today (at " in raiser.errors[0]
    assert raiser.errors[0].endswith(f"{Path(__file__).name}:{RaisingRegistration.register_losses.__code__.co_firstlineno + 2})")
    assert catalog.registry.get("loss", "cross-entropy")


def test_installed_plugin_ships_presets(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    catalog = load_catalog(env={"ZOO_LOAD_PLUGINS": "demo"})
    resolved = catalog.resolve("optimizer", "adam-fast")
    assert resolved.component.owner.distribution == "zoo-demo-plugin" and resolved.params == {"lr": 0.01}


class MisspelledHook:
    @zoo.hookimpl
    def register_model(self, register):
        register("never", lambda params, shape, n: None)

    def register_losses(self, register):  # no @zoo.hookimpl
        register("never", lambda params: None)


def test_a_misspelled_or_unmarked_hook_is_flagged_with_a_suggestion() -> None:
    catalog = load_catalog(env={}, extra_plugins=[("typo", MisspelledHook())])
    typo = next(p for p in catalog.plugins if p.name == "typo")
    assert typo.hooks == []
    assert "register_model is not a zoo hook and is ignored; did you mean register_models?" in typo.warnings
    assert "register_losses is not marked @zoo.hookimpl and is ignored; decorate it with @zoo.hookimpl." in typo.warnings


class ReturnsItsModels:
    @zoo.hookimpl
    def register_models(self, register):
        return {"mine": lambda params, shape, n: None}  # registers nothing


def test_a_hook_that_returns_instead_of_registering_is_told_so() -> None:
    catalog = load_catalog(env={}, extra_plugins=[("returns", ReturnsItsModels())])
    [warning] = next(p for p in catalog.plugins if p.name == "returns").warnings
    assert warning.startswith("register_models returned dict, which zoo ignores: a hook registers each of its things by calling register(")
    with pytest.raises(ZooError, match=r"Unknown model 'mine'.* Note: returns \(register_models returned dict, which zoo ignores"):
        catalog.resolve("model", "mine")  # where the user meets it
    from zoo.listing import list_entries
    from zoo.tables import format_list

    assert "! plugin returns (in-process): register_models returned dict" in format_list(list_entries(catalog, "model", None))  # and in zoo list


class BadDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(-3, gt=0)
    dropout: float = "0.2x"  # type: ignore[assignment]
    depth: int  # required: the user's to give, not an error


class GoodDefaults(BaseModel):
    hidden: list[int] = Field(default_factory=lambda: [8])
    depth: int


class OneOf(BaseModel):
    a: int | None = None
    b: int | None = None
    width: int = None  # type: ignore[assignment]  # sloppy but common: None for "not set"
    path: str = ""

    @model_validator(mode="after")
    def one_of(self) -> "OneOf":
        if (self.a is None) == (self.b is None):
            raise ValueError("give exactly one of a and b")
        return self

    @field_validator("path")
    @classmethod
    def not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("path is required")
        return value


class Kinded(BaseModel):
    def __init_subclass__(cls, kind: str, **kwargs):
        super().__init_subclass__(**kwargs)


class KindedParams(Kinded, kind="model"):
    width: int = 4


class RegistersBadDefaults:
    @zoo.hookimpl
    def register_models(self, register):
        register("bad-defaults", lambda params, shape, n: None, params=BadDefaults)
        register("good-defaults", lambda params, shape, n: None, params=GoodDefaults)
        register("one-of", lambda params, shape, n: None, params=OneOf)  # the user's to satisfy, not a bad default
        register("kinded", lambda params, shape, n: None, params=KindedParams)


def test_params_defaults_that_their_own_fields_refuse_fail_the_plugin_at_load() -> None:
    catalog = load_catalog(env={}, extra_plugins=[("defaults", RegistersBadDefaults())])
    plugin = next(p for p in catalog.plugins if p.name == "defaults")
    assert plugin.status == "failed" and "bad-defaults" in plugin.errors[0]
    assert "width: Input should be greater than 0 (default -3); dropout: Input should be a valid number" in plugin.errors[0]
    assert "depth" not in plugin.errors[0] and catalog.registry.has("model", "good-defaults")
    assert len(plugin.errors) == 1 and catalog.registry.has("model", "one-of") and catalog.registry.has("model", "kinded")


@pytest.mark.parametrize("value,strict", [("false", False), ("0", False), ("no", False), ("off", False), ("", False),
                                          ("1", True), ("true", True), ("YES", True), ("on", True)])
def test_strict_mode_parses_booleans(value: str, strict: bool) -> None:
    from zoo.errors import strict_plugins

    assert strict_plugins({"ZOO_STRICT_PLUGINS": value}) is strict
    with pytest.raises(ZooError, match="is not a boolean"):
        strict_plugins({"ZOO_STRICT_PLUGINS": "maybe"})


def test_load_and_disable_lists_take_distribution_names_and_warn_on_typos(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    status = {p.name: p.status for p in load_catalog(env={"ZOO_LOAD_PLUGINS": "zoo_demo_plugin"}).plugins}
    assert status["demo"] == "loaded" and status["broken"] == "not-selected"
    catalog = load_catalog(env={"ZOO_DISABLE_PLUGINS": "Zoo-Demo-Plugin,demoo", "ZOO_LOAD_PLUGINS": "demo,brokn"})
    assert {p.name: p.status for p in catalog.plugins}["demo"] == "disabled"
    assert any("ZOO_DISABLE_PLUGINS names 'demoo'" in w and "did you mean demo?" in w for w in catalog.warnings)
    assert any("ZOO_LOAD_PLUGINS names 'brokn'" in w and "did you mean broken?" in w for w in catalog.warnings)


def test_an_in_process_copy_stands_in_for_the_installed_plugin(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin's own tests (or `zoo plugins --check`) load it in-process while it is also installed."""
    monkeypatch.syspath_prepend(str(plugin_site))
    import zoo_demo

    catalog = load_catalog(env={"ZOO_LOAD_PLUGINS": "demo"}, extra_plugins=[("demo", zoo_demo)])
    demo = [p for p in catalog.plugins if p.name == "demo"]
    assert len(demo) == 1 and demo[0].status == "loaded" and demo[0].distribution == "zoo-demo-plugin"
    assert catalog.resolve("model", "linear").component.owner.version == "1.2.3"


def _record(plugin: dict[str, str]) -> dict:
    return {"component": "linear", "name": "linear", "params": {}, "plugin": plugin}


def test_a_missing_component_says_where_it_came_from(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.config import part_from_record

    monkeypatch.syspath_prepend(str(plugin_site))
    demo = {"name": "demo", "distribution": "zoo-demo-plugin", "version": "1.2.3"}
    disabled = load_catalog(env={"ZOO_DISABLE_PLUGINS": "demo"})
    with pytest.raises(ZooError, match=r"The model 'linear' of these weights came from zoo-demo-plugin 1\.2\.3 \(plugin 'demo'\), which is disabled by ZOO_DISABLE_PLUGINS"):
        part_from_record(disabled, "model", "model", _record(demo))
    with pytest.raises(ZooError, match="which ZOO_LOAD_PLUGINS does not select; add demo"):
        part_from_record(load_catalog(env={"ZOO_LOAD_PLUGINS": ""}), "model", "model", _record(demo))
    extras = {"name": "extras", "distribution": "zoo-extras", "version": "0.1.0"}
    with pytest.raises(ZooError, match=r"came from zoo-extras 0\.1\.0 \(plugin 'extras'\), which is not installed: `zoo install 'zoo-extras==0\.1\.0'` where it is published, or `zoo install PATH`"):
        part_from_record(disabled, "model", "model", {**_record(extras), "component": "lenet"})
    assert part_from_record(load_catalog(env={}), "model", "model", _record(demo)).resolved.component.owner.plugin == "demo"


def test_a_run_of_a_now_ambiguous_name_takes_the_plugin_that_trained_it() -> None:
    from zoo.config import part_from_record

    catalog = load_catalog(env={}, extra_plugins=[("extras", ExtrasAdamW()), ("more", MoreAdamW())])
    record = {"component": "adamw", "params": {}, "plugin": {"name": "more", "distribution": "(in-process)", "version": "-"}}
    assert part_from_record(catalog, "optimizer", "optimizer", record).resolved.component.factory(None, None) == "more"


def test_zoo_show_gives_settings_with_types_defaults_limits_owner_presets_and_results(tmp_path: Path) -> None:
    from zoo.show import describe, format_description

    [entry] = describe(load_catalog(env={}), "mlp-512")
    assert (entry["kind"], entry["component"], entry["preset"], entry["plugin"], entry["distribution"]) == ("model", "mlp", "mlp-512", "builtin-models", "zoo")
    hidden = next(s for s in entry["settings"] if s["name"] == "hidden")
    assert hidden["type"] == "list[int > 0]" and hidden["default"] == [512, 512] and hidden["help"] and hidden["limits"] == []  # min length 0 is no limit
    dropout = next(s for s in entry["settings"] if s["name"] == "dropout")
    assert dropout["limits"] == [">= 0.0", "< 1.0"]
    assert any(p["name"] == "mlp-<width>" for p in entry["presets"])
    assert any(p["results"] for p in entry["presets"] if p["name"] == "mlp-512")  # measured results
    wide = tmp_path / "wide.toml"
    wide.write_text('[models.mlp-wide]\ncomponent = "mlp"\nparams = { hidden = [2048] }\n')
    [mine] = describe(load_catalog(env={}, registry_files=[wide]), "mlp-wide")
    assert mine["preset_source"] == str(wide) and f"; the preset from {wide}" in format_description([mine])
    assert entry["preset_source"] is None  # the shipped registry's preset says nothing more
    [pattern] = describe(load_catalog(env={}), "mlp-77")
    assert pattern["name"] == "mlp-77" and format_description([pattern]).startswith("mlp-77 (preset mlp-<width> of model mlp)")
    text = format_description(describe(load_catalog(env={}), "sgd"))
    assert "lr            float = 0.001  (> 0)" in text and "from plugin builtin-optimizers (zoo" in text
    with pytest.raises(ZooError, match="Did you mean sgd"):
        describe(load_catalog(env={}), "sgdd")


def test_zoo_show_gives_a_recipes_settings_source_and_results(tmp_path: Path) -> None:
    from zoo.show import describe, format_description

    [entry] = describe(load_catalog(env={}), "tuned")
    assert entry["kind"] == "recipe" and entry["settings"]["model"] == "mlp-512" and entry["settings"]["params"]["loss"] == {"label_smoothing": 0.2}
    assert entry["results"] and all(key == "fashion-mnist/tuned" for key in entry["results"])  # not the quickstart's
    text = format_description([entry])
    assert "run it: zoo run --recipe tuned" in text and "    epochs = 22" in text and "loss.label_smoothing = 0.2  (--set loss.label_smoothing=...)" in text
    assert "measured fashion-mnist/tuned: " in text
    registry = tmp_path / "mine.toml"
    registry.write_text('[recipes.short]\nhelp = "two epochs of mlp-256"\nmodel = "mlp-256"\nepochs = 2\n\n'
                        '[recipes."my typo"]\nparams = { optimizer = { lrr = 0.1 } }\n')
    catalog = load_catalog(env={}, registry_files=[registry])
    [mine] = describe(catalog, "short", [registry])
    assert mine["source"] == str(registry) and mine["results"] == {} and mine["problem"] is None
    text = format_description([mine])
    assert f"run it: zoo run --recipe short --registry {registry}" in text and "no results recorded for it" in text
    [typo] = describe(catalog, "my typo", [registry])  # a recipe zoo run would refuse is not offered as runnable
    assert typo["run"] == f"zoo run --recipe 'my typo' --registry {registry}" and "lrr" in typo["problem"]
    assert "cannot run here: " in format_description([typo]) and "run it:" not in format_description([typo])
    [from_env] = describe(load_catalog(env={"ZOO_REGISTRY": str(registry)}), "short")  # loaded anyway: no --registry (twice is an error)
    assert from_env["run"] == "zoo run --recipe short"
    with pytest.raises(ZooError, match="Did you mean tuned"):
        describe(load_catalog(env={}), "tunde")


def test_the_dataset_helpers_are_public() -> None:
    import zoo.datasets
    from zoo_plugins import datasets, idx

    assert zoo.datasets.read_idx is idx.read_idx and zoo.datasets.load is datasets.load and zoo.datasets.locate is datasets.locate
    assert set(zoo.datasets.__all__) >= {"IDXParams", "Known", "Spec", "load", "locate", "read_idx", "verify_file", "cache_dir"}


PLUGIN_FILE = '''
import zoo
from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 16


def build(params, input_shape, num_classes):
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.LazyLinear(params.width), nn.ReLU(), nn.Linear(params.width, num_classes))


@zoo.hookimpl
def register_models(register):
    register("from-a-file", build, params=Params, help="a model from a plugin file")
'''


def test_a_plugin_file_is_tried_without_packaging_it(tiny_data: Path, tmp_path: Path) -> None:
    from helpers import tiny_sets

    plugin = tmp_path / "zoo_test_file_plugin.py"
    plugin.write_text(PLUGIN_FILE)
    catalog = load_catalog(env={"ZOO_PLUGIN_FILES": str(plugin)})
    info = next(p for p in catalog.plugins if p.name == "zoo_test_file_plugin")
    assert (info.status, info.distribution, info.version, info.components) == ("loaded", str(plugin), "(file)", ["model:from-a-file"])
    run = zoo.run(catalog=catalog, dataset="mnist", model="from-a-file", epochs=1, out=tmp_path / "run", reporters=[],
                  sets=[*tiny_sets(tiny_data), "model.width=8"])
    assert run.epochs and run.run_dir is not None
    with pytest.raises(ZooError, match=f"a plugin file that is not loaded now; add it to ZOO_PLUGIN_FILES \\({plugin}\\)"):
        zoo.load(tmp_path / "run", catalog=load_catalog(env={}))  # a later shell without it

    class SameName:
        @zoo.hookimpl
        def register_models(self, register) -> None:
            register("from-a-notebook", lambda params, shape, classes: None)

    with pytest.raises(ZooError, match="a plugin called 'zoo_test_file_plugin' is loaded already"):  # not a quietly failed entry
        load_catalog(env={"ZOO_PLUGIN_FILES": str(plugin)}, extra_plugins=[("zoo_test_file_plugin", SameName())])


def test_a_broken_or_shadowing_plugin_file_fails_alone(tmp_path: Path) -> None:
    broken = tmp_path / "zoo_test_broken_file.py"
    broken.write_text("import zoo\n\nraise RuntimeError('half written')\n")
    files = [broken, tmp_path / "json.py", tmp_path / "wave.py", tmp_path / "builtin-models.py", tmp_path / "off.py"]
    for file in files[1:]:
        file.write_text("")
    catalog = load_catalog(env={"ZOO_PLUGIN_FILES": os.pathsep.join([*map(str, files), str(broken), str(tmp_path / "absent.py")]),
                                "ZOO_DISABLE_PLUGINS": "off"})
    errors = {p.name: p.errors[0] if p.errors else p.status for p in catalog.plugins if p.version == "(file)"}
    assert errors["zoo_test_broken_file"] == f"import failed: RuntimeError: half written (at {broken}:3)"  # once, though named twice
    assert "a module named 'json' is already imported" in errors["json"] and "rename json.py" in errors["json"]
    assert "a module named 'wave' is installed" in errors["wave"]  # importable, if not imported: the file would hide it
    assert errors["off"] == "disabled" and "builtin-models" not in errors
    assert any("a plugin named 'builtin-models' is already loaded (zoo " in warning for warning in catalog.warnings)
    assert "absent.py is not a Python file or a package folder" in errors["absent"]
    assert catalog.registry.get("model", "mlp")  # the rest of zoo works


def test_a_loaded_package_named_again_in_plugin_files_is_said_plainly(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed plugin's own folder in ZOO_PLUGIN_FILES: the same module object a second time, which pluggy refused with
    a dump of every plugin; and a package named by its __init__.py is that package, not a plugin called '__init__'."""
    monkeypatch.syspath_prepend(str(plugin_site))
    package = plugin_site / "zoo_demo"
    for named in (package, package / "__init__.py"):
        catalog = load_catalog(env={"ZOO_PLUGIN_FILES": str(named), "ZOO_LOAD_PLUGINS": "demo"})
        errors = {p.name: p.errors for p in catalog.plugins if p.version == "(file)"}
        assert errors == {"zoo_demo": [f"import failed: ImportError: it is plugin 'demo', already loaded from the same code ({package / '__init__.py'}); "
                                       "leave it out of ZOO_PLUGIN_FILES"]}, named
        assert catalog.registry.get("model", "linear").owner.distribution == "zoo-demo-plugin"  # the installed one works


def test_a_plugin_file_is_recorded_by_the_path_the_shell_finds(tmp_path: Path) -> None:
    plugin = tmp_path / "zoo_test_dotted_path.py"
    plugin.write_text(PLUGIN_FILE.replace("from-a-file", "from-a-dotted-path"))
    (tmp_path / "sub").mkdir()
    catalog = load_catalog(env={"ZOO_PLUGIN_FILES": str(tmp_path / "sub" / ".." / plugin.name)})
    assert next(p for p in catalog.plugins if p.name == "zoo_test_dotted_path").distribution == str(plugin.parent.resolve() / plugin.name)


def test_a_plugin_that_exits_while_loading_or_registering_fails_alone(tmp_path: Path) -> None:
    at_import, in_hook = tmp_path / "zoo_test_exits_at_import.py", tmp_path / "zoo_test_exits_in_hook.py"
    at_import.write_text("import sys\nsys.exit(3)\n")
    in_hook.write_text("import sys\nimport zoo\n\n\n@zoo.hookimpl\ndef register_models(register):\n    sys.exit('no models today')\n")
    catalog = load_catalog(env={"ZOO_PLUGIN_FILES": os.pathsep.join(map(str, (at_import, in_hook)))})
    status = {p.name: (p.status, " ".join(p.errors)) for p in catalog.plugins if p.name.startswith("zoo_test_exits")}
    assert status["zoo_test_exits_at_import"][0] == "failed" and "SystemExit: 3" in status["zoo_test_exits_at_import"][1]
    assert status["zoo_test_exits_in_hook"][0] == "failed" and "SystemExit: no models today" in status["zoo_test_exits_in_hook"][1]
    assert catalog.resolve("model", "mlp-512")  # the rest of zoo is there


def test_a_plugin_file_edited_in_a_session_is_imported_again_and_recorded_as_it_ran(tiny_data: Path, tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook: run, edit the plugin file, run again. The second run used the old code yet recorded the new file's hash.
    The edit keeps the size and the modification time, which Python's bytecode cache alone would not notice."""
    import json
    import os
    import sys

    from helpers import tiny_sets

    import torch

    from zoo.plugins import file_digest

    plugin = tmp_path / "zoo_test_edited_plugin.py"
    plugin.write_text(PLUGIN_FILE)
    env = {"ZOO_PLUGIN_FILES": str(plugin)}
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as a notebook: the first import leaves a .pyc
    first = zoo.run(catalog=load_catalog(env=env), dataset="mnist", model="from-a-file", epochs=1, out=tmp_path / "a", reporters=[],
                    sets=[*tiny_sets(tiny_data), "model.width=8"])
    assert isinstance(first.model[2], torch.nn.ReLU)
    before = plugin.stat()
    plugin.write_text(PLUGIN_FILE.replace("nn.ReLU()", "nn.Tanh()"))  # as many bytes
    os.utime(plugin, ns=(before.st_atime_ns, before.st_mtime_ns))
    second = zoo.run(catalog=load_catalog(env=env), dataset="mnist", model="from-a-file", epochs=1, out=tmp_path / "b", reporters=[],
                     sets=[*tiny_sets(tiny_data), "model.width=8"])
    assert isinstance(second.model[2], torch.nn.Tanh)  # the code now in the file
    recorded = json.loads((tmp_path / "b" / "config.json").read_text())["versions"]["plugins"]["zoo_test_edited_plugin"]
    assert recorded.endswith(f"sha256:{file_digest(plugin)}")


def test_a_package_plugin_that_fails_to_import_leaves_none_of_its_modules_behind(tmp_path: Path) -> None:
    """Else a later import would mix the new files with submodules kept from the failed one."""
    import sys

    package = tmp_path / "zoo_test_broken_package"
    package.mkdir()
    (package / "__init__.py").write_text("from . import a, b\n")
    (package / "a.py").write_text("A = 1\n")
    (package / "b.py").write_text("raise RuntimeError('b is broken')\n")
    catalog = load_catalog(env={"ZOO_PLUGIN_FILES": str(package)})
    info = next(p for p in catalog.plugins if p.name == "zoo_test_broken_package")
    assert info.status == "failed" and "b is broken" in " ".join(info.errors)
    assert not [name for name in sys.modules if name.startswith("zoo_test_broken_package")]
