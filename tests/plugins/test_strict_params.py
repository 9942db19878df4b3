"""The built-in components' settings are strict: TOML's `true` is not the width 1, nor the learning
rate 1.0, and 1 is not `true`. Every number and switch of every built-in component is tried."""

from __future__ import annotations

import json
import typing

import pytest
from click.testing import CliRunner

from zoo.cli import cli
from zoo.plugins import load_catalog

def builtin_fields() -> list[tuple[str, str, str, str]]:
    """(kind, component, field, a wrongly typed TOML value) for every int, float and bool setting."""
    catalog = load_catalog(env={})
    cases = []
    for component in catalog.registry:
        if not component.owner.plugin.startswith("builtin-"):
            continue
        for name, field in component.params.model_fields.items():
            types = (field.annotation, *typing.get_args(field.annotation))
            kinds = {typing.get_origin(t) or t for t in types} & {int, float, bool, list}
            if bool in kinds:
                cases.append((component.kind, component.name, name, "1"))
            elif kinds & {int, float}:
                cases.append((component.kind, component.name, name, "true"))
            elif list in kinds:
                cases.append((component.kind, component.name, name, "[true]"))
    return cases


CASES = builtin_fields()


def test_the_sweep_covers_the_settings_that_matter() -> None:
    found = {(kind, name, field) for kind, name, field, _ in CASES}
    assert {("model", "mlp", "hidden"), ("model", "mlp", "dropout"), ("optimizer", "sgd", "lr"), ("optimizer", "sgd", "nesterov"),
            ("dataset", "mnist", "shift"), ("dataset", "fashion-mnist", "verify"), ("scheduler", "step", "every_epochs"),
            ("loss", "cross-entropy", "label_smoothing")} <= found


@pytest.mark.parametrize(("kind", "name", "field", "value"), CASES, ids=[f"{c[1]}.{c[2]}={c[3]}" for c in CASES])
def test_a_wrongly_typed_setting_is_refused(kind: str, name: str, field: str, value: str) -> None:
    args = ["run", f"--{kind}", name, "--set", f"{kind}.{field}={value}", "--dry-run"]
    if kind == "reporter":
        args = ["run", "--reporter", name, "--set", f"{name}.{field}={value}", "--dry-run"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: Invalid ") and "Traceback" not in result.output
    assert f".{field}" in result.output and "(got " in result.output


@pytest.mark.parametrize(("assignment", "path", "expected"), [
    ("model.hidden=[256, 128]", ("model", "params", "hidden"), [256, 128]),
    ("optimizer.lr=1", ("optimizer", "params", "lr"), 1.0),  # an integer is a number
    ("dataset.data_dir=\"/some/where\"", ("dataset", "params", "data_dir"), "/some/where"),  # a path is text
    ("dataset.hflip=true", ("dataset", "params", "hflip"), True),
])
def test_well_typed_settings_still_pass(assignment: str, path: tuple[str, ...], expected: object) -> None:
    result = CliRunner().invoke(cli, ["run", "--set", assignment, "--dry-run"])
    assert result.exit_code == 0, result.output
    value = json.loads(result.output)["components"]
    for key in path:
        value = value[key]
    assert value == expected
