from __future__ import annotations

import pytest
from pydantic import BaseModel

from zoo.errors import ZooError
from zoo.registry import Component, NoParams, Owner, Registry, matches, natural_sorted

A = Owner("plugin-a", "dist-a", "1.0")
B = Owner("plugin-b", "dist-b", "2.0")


def component(name: str, owner: Owner = A, kind: str = "model", params: type[BaseModel] = NoParams) -> Component:
    return Component(kind, name, lambda *args: None, params, "help", owner)


def test_add_and_get_record_the_owner() -> None:
    registry = Registry()
    registry.add(component("mlp"))
    assert registry.get("model", "mlp").owner == A


def test_a_name_two_plugins_register_is_usable_by_qualified_name_only() -> None:
    registry = Registry()
    registry.add(component("mlp", A))
    registry.add(component("mlp", B))
    with pytest.raises(ZooError, match="registered by both") as error:
        registry.get("model", "mlp")
    assert "dist-a 1.0" in str(error.value) and "dist-b 2.0" in str(error.value) and "plugin-a:mlp or plugin-b:mlp" in str(error.value)
    assert "mlp" not in registry.components["model"]
    assert registry.get("model", "plugin-a:mlp").owner == A and registry.get("model", "plugin-b:mlp").owner == B


def test_a_third_party_plugin_cannot_take_a_name_of_zoos_own() -> None:
    from zoo.registry import NameTaken

    registry = Registry()
    zoo_own = Owner("builtin-models", "zoo", "0.1.0")
    registry.add(component("mlp", zoo_own))
    with pytest.raises(NameTaken, match="a name of zoo's own"):
        registry.add(component("mlp", B))
    assert registry.get("model", "mlp").owner == zoo_own


def test_same_name_in_different_kinds_is_fine() -> None:
    registry = Registry()
    registry.add(component("x", kind="model"))
    registry.add(component("x", kind="loss"))
    assert registry.get("loss", "x").kind == "loss"


def test_unknown_name_lists_known_names_and_suggests_the_closest() -> None:
    registry = Registry()
    for name in ("mlp-512", "mlp-256", "cnn"):
        registry.add(component(name))
    with pytest.raises(ZooError) as error:
        registry.get("model", "mlp-521")
    message = str(error.value)
    assert "Did you mean mlp-512?" in message
    assert "Known models: cnn, mlp-256, mlp-512." in message


def test_a_name_in_the_wrong_case_is_suggested_as_written_in_the_registry() -> None:
    registry = Registry()
    registry.add(component("mlp-512"))
    with pytest.raises(ZooError, match="Did you mean mlp-512[?]"):
        registry.get("model", "MLP-512")


def test_an_unknown_loss_is_spelt_right() -> None:
    from zoo.errors import unknown_name

    assert "Known losses: cross-entropy." in str(unknown_name("loss", "nll", ["cross-entropy"]))


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (dict(name="has space"), "names are letters"),
        (dict(factory="not callable"), "must be callable"),
        (dict(params=dict), "pydantic model class"),
    ],
)
def test_malformed_registrations_name_the_plugin(bad: dict, expected: str) -> None:
    fields = dict(kind="model", name="ok", factory=lambda: None, params=NoParams, help="", owner=A) | bad
    with pytest.raises(ZooError, match=expected) as error:
        Registry().add(Component(**fields))
    assert "plugin-a" in str(error.value)


def test_natural_sort_and_wildcards() -> None:
    assert natural_sorted(["mlp-1024", "mlp-256", "mlp-512"]) == ["mlp-256", "mlp-512", "mlp-1024"]
    assert matches("mlp-512", "mlp-*") and not matches("cnn", "mlp-*")
    assert matches("fashion-mnist", "mnist") and matches("anything", None)
