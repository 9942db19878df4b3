from __future__ import annotations

from dataclasses import replace

import re

import pytest
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

import zoo
from zoo.config import parse_set, resolve_run
from zoo.errors import ZooError
from zoo.plugins import Catalog, load_catalog


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(env={})


def test_defaults_are_the_quickstart(catalog: Catalog) -> None:
    run = resolve_run(catalog)
    assert (run.config.batch_size, run.config.epochs, run.config.shuffle) == (64, 5, False)
    assert run.model.params.model_dump() == {"hidden": [512, 512], "dropout": 0.0}
    assert run.optimizer.params.model_dump() == {"lr": 1e-3, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0, "fused": False}
    assert run.loss.resolved.component.name == "cross-entropy"
    assert [r.resolved.name for r in run.reporters] == ["console"]


def test_command_line_overrides_the_recipe(catalog: Catalog) -> None:
    run = resolve_run(catalog, overrides={"epochs": 2, "model": "mlp-1024"}, sets=["model.hidden=[1024,256]", "optimizer.momentum=0.9"])
    assert run.config.epochs == 2
    assert run.model.params.model_dump() == {"hidden": [1024, 256], "dropout": 0.0}
    assert run.optimizer.params.lr == 1e-3 and run.optimizer.params.momentum == 0.9
    assert run.model.changes_preset and run.model.to_json()["changes_preset"] is True  # no longer the network mlp-1024 names
    kept = resolve_run(catalog, overrides={"model": "mlp-1024"}, sets=["model.dropout=0.1", "model.hidden=[1024, 1024]"])
    assert not kept.model.changes_preset and "changes_preset" not in kept.model.to_json()  # a setting the preset leaves open, or its own value
    from zoo.identity import config_hash

    assert config_hash(run) == config_hash(replace(run, model=replace(run.model, changes_preset=False)))  # runs from before it still resume


def test_a_run_records_what_it_changes_from_its_recipe(catalog: Catalog) -> None:
    from dataclasses import replace

    from zoo.api import resolve
    from zoo.identity import config_hash

    def changed(**settings: object) -> dict:
        return resolve(catalog=catalog, **settings)[1].changed

    assert changed() == {} and changed(recipe="tuned", seed=7, device="cpu") == {}  # another seed or device: the same recipe
    assert changed(recipe="tuned", epochs=4, mixup=0.0) == {"epochs": 4, "mixup": 0.0}
    assert changed(recipe="tuned", sets=["loss.label_smoothing=0.1"]) == {"loss.label_smoothing": 0.1}
    assert changed(model="mlp-256") == {"model": "mlp-256"}  # not the preset's own widths
    assert changed(recipe="tuned", scheduler="cosine", sets=["model.dropout=0.1"]) == {"scheduler": "cosine", "model.dropout": 0.1}
    assert changed(epochs=5, sets=["optimizer.lr=1e-3"]) == {}  # the recipe's own values are no change
    run = resolve(catalog=catalog, recipe="tuned", epochs=4)[1]
    assert run.to_json()["changed_from_recipe"] == {"epochs": 4}
    assert config_hash(run) == config_hash(replace(run, changed={}))  # what a run is does not depend on it


def test_changes_from_a_recipe_that_does_not_resolve_here(tmp_path) -> None:
    from zoo.api import resolve
    from zoo.config import resolved_from_record

    registry = tmp_path / "mine.toml"
    registry.write_text('[recipes.watched]\nreporters = ["nosuch"]\nepochs = 3\n\n[recipes.ghost]\nmodel = "ghostnet"\n')
    catalog = load_catalog(env={}, registry_files=[registry])
    assert resolve(catalog=catalog, recipe="watched", reporters=["console"], epochs=1)[1].changed == {"epochs": 1}  # reporters never count
    run = resolve(catalog=catalog, recipe="ghost", model="mlp-256")[1]
    assert run.changed is None and run.to_json()["changed_from_recipe"] is None  # unknown, not "unchanged"
    record = resolve(catalog=catalog, recipe="watched", reporters=["console"])[1].to_json()
    for damaged in ("x", 3, [1], None):  # a damaged field of config.json costs the mark, not the resume
        assert resolved_from_record(catalog, {**record, "changed_from_recipe": damaged}).changed is None


def test_a_recipes_own_unknown_section_is_blamed_on_the_recipe(tmp_path) -> None:
    registry = tmp_path / "mine.toml"
    registry.write_text('[recipes.british]\nparams = { optimiser = { lr = 0.1 } }\n')
    with pytest.raises(ZooError, match=rf"Recipe 'british' \(in {re.escape(str(registry))}\) has params for unknown section\(s\) optimiser"):
        resolve_run(load_catalog(env={}, registry_files=[registry]), recipe="british")


def test_a_recipes_settings_for_a_reporter_the_run_leaves_out_do_not_stop_it(tmp_path) -> None:
    from zoo.api import resolve

    registry = tmp_path / "mine.toml"
    registry.write_text('[recipes.logged]\nreporters = ["console", "jsonl"]\nparams = { jsonl = { path = "log.jsonl" } }\n')
    catalog = load_catalog(env={}, registry_files=[registry])
    assert resolve(catalog=catalog, recipe="logged", epochs=2)[1].changed == {"epochs": 2}  # its changes are known
    assert [r.resolved.name for r in resolve(catalog=catalog, recipe="logged", reporters=["console"])[1].reporters] == ["console"]
    with pytest.raises(ZooError, match=r"--set names unknown section\(s\) jsonl"):  # but --set for a reporter left out is a mistake
        resolve(catalog=catalog, recipe="logged", reporters=["console"], sets=["jsonl.path=x.jsonl"])


def test_an_error_in_a_recipe_names_the_recipe_and_its_file(tmp_path) -> None:
    from zoo.api import resolve

    registry = tmp_path / "mine.toml"
    registry.write_text('[recipes.fast]\nparams = { optimizer = { lrr = 0.1 } }\n\n[recipes.ghost]\nmodel = "mlp-5l2"\n')
    catalog = load_catalog(env={}, registry_files=[registry])
    blame = rf"This comes from recipe '{{}}' in {re.escape(str(registry))}, not from the settings given with it"
    with pytest.raises(ZooError, match=r"optimizer.lrr: unknown key.*" + blame.format("fast")):
        resolve(catalog=catalog, recipe="fast", epochs=1)
    with pytest.raises(ZooError, match=r"Unknown model 'mlp-5l2'.*" + blame.format("ghost")):
        resolve(catalog=catalog, recipe="ghost")
    assert resolve(catalog=catalog, recipe="ghost", model="mlp-256")[1].config.model == "mlp-256"  # the flag mends it
    with pytest.raises(ZooError) as error:  # the command line's own mistake is not blamed on the recipe
        resolve(catalog=catalog, model="mlp-5l2")
    assert "This comes from recipe" not in str(error.value)


def test_parse_set_reads_toml_values_and_falls_back_to_text() -> None:
    assert parse_set("model.hidden=[1, 2]") == ("model", "hidden", [1, 2])
    assert parse_set("optimizer.lr=1e-2") == ("optimizer", "lr", 0.01)
    assert parse_set("dataset.data_dir=/tmp/x") == ("dataset", "data_dir", "/tmp/x")
    assert parse_set("epochs=3") == (None, "epochs", 3)
    assert parse_set("dataset.mirror=True")[2] == "True"  # not TOML: text, which a string setting takes as it is
    with pytest.raises(ZooError, match="SECTION.KEY=VALUE"):
        parse_set("nonsense")
    with pytest.raises(ZooError, match=r"\[a\] is not a valid TOML list or table \(invalid value\); check its brackets, and put text inside it in quotes"):
        parse_set("model.hidden=[a]")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(overrides={"epochs": 0}), r"epochs: Input should be greater than 0 \(got 0\)"),
        (dict(overrides={"batch_size": 0}), r"batch_size: Input should be greater than 0"),
        (dict(sets=["optimizer.lr=0"]), r"optimizer.lr: Input should be greater than 0"),
        (dict(sets=["optimizer.lr=-1"]), r"optimizer.lr: Input should be greater than 0"),
        (dict(sets=["optimizer.lr=nan"]), r"optimizer.lr: Input should be a finite number"),
        (dict(sets=["model.colour=1"]), r"model.colour: unknown key \(not a setting of this component\)"),
        (dict(sets=["model.hiden=[10]"]), r"model.hiden: unknown key \(not a setting of this component; did you mean hidden\?\)"),
        (dict(sets=["optimizer.lr=.01"]), r"optimizer.lr: Input should be a valid number.*; give a number or True/False \(in sets=, TOML text: 0.01, 1e-3, true\)"),
        (dict(sets=["optimizer.nesterov=True"]), r"optimizer.nesterov: .*; give a number or True/False \(in sets=, TOML text"),
        (dict(sets=["epoch=3"]), r"'epoch' is not a run setting; did you mean epochs\? Run settings are recipe, "),
        (dict(sets=["optimzer.lr=1"]), r"--set names unknown section\(s\) optimzer \(did you mean optimizer\?\)"),
        (dict(sets=["hidden=3"]), r"'hidden' is not a run setting but a setting of a component: give its section, sets=\['model.hidden=3'\]\.$"),
        (dict(sets=["dropout=0.25"]), r"sets=\['model.dropout=0.25'\]\.$"),  # as typed, the component found among the run's own
        (dict(sets=["colour=3"]), r"'colour' is not a run setting. A component's setting needs its section, e.g. sets=\['model.colour="),
        (dict(sets=["decoder.x=1"]), r"--set names unknown section\(s\) decoder"),
        (dict(overrides={"model": "mlp-0"}), r"model.hidden.0: Input should be greater than 0"),
        (dict(overrides={"model": "mlp-abc"}), r"Unknown model 'mlp-abc'. Did you mean mlp\?.*mlp-<width>"),
        (dict(overrides={"model": "mpl-512"}), r"Did you mean mlp-512\?"),
        (dict(overrides={"dataset": "fashion_mnist"}), r"Did you mean fashion-mnist\?"),
        (dict(recipe="quikstart"), r"Unknown recipe 'quikstart'. Did you mean quickstart\?"),
        (dict(recipe="mine"), r"Unknown recipe 'mine'. Known recipes: quickstart, tuned. A recipe in a file of your own needs that file: registry_files=\[FILE\]"),
        (dict(sets=["optimizer.nesterov=true"]), r"nesterov=true needs momentum > 0"),
    ],
)
def test_bad_settings_say_where_and_what(catalog: Catalog, kwargs: dict, expected: str) -> None:
    with pytest.raises(ZooError, match=expected):
        resolve_run(catalog, **kwargs)


def test_swapping_a_component_drops_the_recipes_params_for_it(catalog: Catalog, tmp_path) -> None:
    (tmp_path / "r.toml").write_text("[recipes.r]\noptimizer='sgd'\nparams={optimizer={lr=0.5, momentum=0.9}}\n")
    catalog = load_catalog(env={}, registry_files=[tmp_path / "r.toml"])
    assert resolve_run(catalog, recipe="r").optimizer.params.momentum == 0.9
    (tmp_path / "s.toml").write_text("[optimizers.sgd-plain]\ncomponent='sgd'\n")
    catalog = load_catalog(env={}, registry_files=[tmp_path / "r.toml", tmp_path / "s.toml"])
    run = resolve_run(catalog, recipe="r", overrides={"optimizer": "sgd-plain"})
    assert run.optimizer.params.momentum == 0.0 and run.optimizer.params.lr == 1e-3


def test_resolved_config_records_owner_and_full_params(catalog: Catalog) -> None:
    record = resolve_run(catalog).to_json()
    model = record["components"]["model"]
    assert model["name"] == "mlp-512" and model["component"] == "mlp" and model["preset"] == "mlp-512"
    assert model["plugin"]["distribution"] == "zoo" and model["params"] == {"hidden": [512, 512], "dropout": 0.0}
    assert record["components"]["optimizer"]["params"]["lr"] == 1e-3 and record["components"]["optimizer"]["plugin"]["name"] == "builtin-optimizers"


class Lenient(BaseModel):
    """A plugin's params class that does not forbid unknown keys (pydantic's default ignores them)."""

    dropout: float = 0.1


class Aliased(BaseModel):
    lr: float = Field(0.1, validation_alias=AliasChoices("learning_rate", "lr"))
    momentum: float = Field(0.0, alias="beta")  # by its alias only: `momentum` itself would be ignored


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # a plugin that takes any key on purpose


class LenientModels:
    @zoo.hookimpl
    def register_models(self, register):
        register("lenient", lambda params, shape, n: None, params=Lenient)
        register("aliased", lambda params, shape, n: None, params=Aliased)
        register("open", lambda params, shape, n: None, params=Open)


def test_a_typo_is_an_error_even_where_the_params_class_would_ignore_it() -> None:
    catalog = load_catalog(env={}, extra_plugins=[("lenient", LenientModels())])
    assert resolve_run(catalog, overrides={"model": "lenient"}, sets=["model.dropout=0.3"]).model.params.dropout == 0.3
    with pytest.raises(ZooError, match=r"model.dropuot: unknown key \(not a setting of this component; did you mean dropout\?\) \(got 0.5\)"):
        resolve_run(catalog, overrides={"model": "lenient"}, sets=["model.dropuot=0.5"])


def test_unknown_keys_are_what_pydantic_would_ignore_aliases_and_all(tmp_path) -> None:
    catalog = load_catalog(env={}, extra_plugins=[("lenient", LenientModels())])
    model = resolve_run(catalog, overrides={"model": "aliased"}, sets=["model.learning_rate=0.5", "model.beta=0.9"]).model.params
    assert (model.lr, model.momentum) == (0.5, 0.9)
    with pytest.raises(ZooError, match=r"model.momentum: unknown key"):
        resolve_run(catalog, overrides={"model": "aliased"}, sets=["model.momentum=0.9"])  # pydantic would drop it
    assert resolve_run(catalog, overrides={"model": "open"}, sets=["model.anything=1"]).model.params.anything == 1
    (tmp_path / "p.toml").write_text('[models.lenient-typo]\ncomponent = "lenient"\nparams = { dropuot = 0.5 }\n')
    with pytest.raises(ZooError, match=r"model.dropuot: unknown key"):  # a preset's typo too
        resolve_run(load_catalog(env={}, registry_files=[tmp_path / "p.toml"], extra_plugins=[("lenient", LenientModels())]),
                    overrides={"model": "lenient-typo"})


def test_a_components_setting_given_as_a_runs_names_its_section(catalog: Catalog) -> None:
    with pytest.raises(ZooError, match=r"lr=0.1 is a setting of the optimizer \(sgd\), not of the run: give it as sets=\[\"optimizer.lr=0.1\"\]"):
        resolve_run(catalog, overrides={"lr": 0.1})


def test_the_hint_for_a_components_setting_writes_its_value_as_toml(catalog: Catalog) -> None:
    with pytest.raises(ZooError, match=r'sets=\["optimizer.nesterov=true"\] \(on the command line: --set optimizer.nesterov=true\)'):
        resolve_run(catalog, overrides={"nesterov": True})


class Stack(BaseModel):
    width: int  # required: a preset may leave it to the run
    depth: int = 1


class StackModels:
    @zoo.hookimpl
    def register_models(self, register):
        register("stack", lambda params, shape, n: None, params=Stack)


def test_a_preset_that_leaves_a_required_setting_open_resolves_and_keeps_its_name(tmp_path) -> None:
    (tmp_path / "p.toml").write_text('[models.stack-deep]\ncomponent = "stack"\nparams = { depth = 3 }\n')
    catalog = load_catalog(env={}, registry_files=[tmp_path / "p.toml"], extra_plugins=[("stack", StackModels())])
    deep = resolve_run(catalog, overrides={"model": "stack-deep"}, sets=["model.width=8"]).model
    assert (deep.params.width, deep.params.depth, deep.changes_preset) == (8, 3, False)
    assert resolve_run(catalog, overrides={"model": "stack-deep"}, sets=["model.width=8", "model.depth=1"]).model.changes_preset
