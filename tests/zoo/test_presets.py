from __future__ import annotations

from pathlib import Path

import pytest

from zoo.errors import ZooError
from zoo.plugins import load_catalog, shipped_registry
from zoo.presets import Presets


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_shipped_registry_has_the_quickstart_recipe_and_mlp_presets() -> None:
    presets = Presets()
    presets.load_file(shipped_registry())
    recipe = presets.recipe("quickstart")
    assert (recipe.batch_size, recipe.epochs, recipe.shuffle, recipe.loss, recipe.optimizer) == (64, 5, False, "cross-entropy", "sgd")
    assert recipe.params["optimizer"] == {"lr": 1e-3}
    for width in (256, 512, 1024):
        name, preset = presets.find("model", f"mlp-{width}")
        assert name == f"mlp-{width}" and preset.params == {"hidden": [width, width]}


def test_a_placeholder_preset_matches_any_digits() -> None:
    presets = Presets()
    presets.load_file(shipped_registry())
    name, preset = presets.find("model", "mlp-77")
    assert name == "mlp-{width}" and preset.params == {"hidden": [77, 77]}
    assert presets.find("model", "mlp-abc") is None


def test_malformed_toml_names_the_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "[models.x]\ncomponent = \"mlp\"\nparams = { hidden = [1, }\n")
    with pytest.raises(ZooError, match=r"bad.toml is not valid TOML: .*line 3"):
        Presets().load_file(bad)


def test_unknown_keys_and_tables_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match=r"\[models.x\].colour: unknown key"):
        Presets().load_file(write(tmp_path / "a.toml", "[models.x]\ncomponent='mlp'\ncolour='red'\n"))
    with pytest.raises(ZooError, match="unknown table"):
        Presets().load_file(write(tmp_path / "b.toml", "[modles.x]\ncomponent='mlp'\n"))
    with pytest.raises(ZooError, match=r"epochs: Input should be greater than 0"):
        Presets().load_file(write(tmp_path / "c.toml", "[recipes.r]\nepochs=0\n"))


def test_a_name_defined_in_two_files_is_an_error_naming_both(tmp_path: Path) -> None:
    user = write(tmp_path / "mine.toml", "[models.mlp-512]\ncomponent='mlp'\n")
    with pytest.raises(ZooError) as error:
        load_catalog(env={}, registry_files=[user])
    assert "registry.toml" in str(error.value) and "mine.toml" in str(error.value)


def test_user_presets_come_from_registry_option_and_environment(tmp_path: Path) -> None:
    one = write(tmp_path / "one.toml", "[models.wide]\ncomponent='mlp'\nparams={hidden=[2048]}\n")
    two = write(tmp_path / "two.toml", "[recipes.short]\nepochs=1\n")
    catalog = load_catalog(env={"ZOO_REGISTRY": str(two)}, registry_files=[one])
    resolved = catalog.resolve("model", "wide")
    assert resolved.component.name == "mlp" and resolved.params == {"hidden": [2048]}
    assert catalog.presets.recipe("short").epochs == 1


def test_missing_registry_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="does not exist"):
        load_catalog(env={}, registry_files=[tmp_path / "nope.toml"])


@pytest.mark.parametrize(("text", "expected"), [
    ("models = 5\n", r"models must be a table of named entries, e.g. \[models.NAME\] .*not int 5"),
    ("recipes = 'quick'\n", r"recipes must be a table of named entries, e.g. \[recipes.NAME\], not str 'quick'"),
    ("models = [1, 2]\n", r"models must be a table .*not list \[1, 2\]"),
    ("[recipes.r]\nparams = {model = {hidden = " + "[" * 1000 + "]" * 1000 + "}}\n", "nests arrays or tables too deeply"),
    ("[models.m]\ncomponent = 'mlp'\nparams = {hidden = " + "[" * 100 + "]" * 100 + "}\n", "nests arrays or tables 104 levels deep"),
])
def test_a_registry_of_the_wrong_shape_is_an_error_naming_the_file(text: str, expected: str, tmp_path: Path) -> None:
    bad = write(tmp_path / "shape.toml", text)
    with pytest.raises(ZooError, match=f"Registry file {bad}.*{expected}"):
        Presets().load_file(bad)


def test_a_bad_registry_through_the_environment_is_one_paragraph_for_list_and_dry_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    bad = write(tmp_path / "env.toml", "models = 5\n")
    for args in (["list"], ["run", "--dry-run"]):
        result = CliRunner().invoke(cli, args, env={"ZOO_REGISTRY": str(bad)})
        assert result.exit_code == 2 and "Traceback" not in result.output and result.output.count("\n") == 1
        assert result.output.startswith(f"Error: Registry file {bad}: models must be a table")


@pytest.mark.parametrize("seed", [2**64, -(2**63) - 1, 18446744073709551616 * 10])
def test_a_seed_torch_cannot_take_is_refused_in_a_recipe_and_on_the_command_line(seed: int, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    with pytest.raises(ZooError, match=r"\[recipes.r\].seed: Input should be (less|greater) than or equal to"):
        Presets().load_file(write(tmp_path / "seed.toml", f"[recipes.r]\nseed = {seed}\n"))
    result = CliRunner().invoke(cli, ["run", "--seed", str(seed), "--dry-run"])
    assert result.exit_code == 2 and "Traceback" not in result.output and result.output.count("\n") == 1
    assert "seed: Input should be" in result.output and str(seed) in result.output


@pytest.mark.parametrize("seed", [2**64 - 1, -(2**63), 0])
def test_every_seed_torch_takes_is_accepted(seed: int) -> None:
    import torch
    from click.testing import CliRunner

    from zoo.cli import cli

    torch.Generator().manual_seed(seed)
    result = CliRunner().invoke(cli, ["run", "--seed", str(seed), "--dry-run"])
    assert result.exit_code == 0, result.output

