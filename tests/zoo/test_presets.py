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
    with pytest.raises(ZooError, match=r"\[models.x\].colour: unknown key \(not a setting of a preset\)"):
        Presets().load_file(write(tmp_path / "a.toml", "[models.x]\ncomponent='mlp'\ncolour='red'\n"))
    with pytest.raises(ZooError, match=r"\[recipes.fast\].epoch: unknown key \(not a setting of a recipe; did you mean epochs\?\)"):
        Presets().load_file(write(tmp_path / "b.toml", "[recipes.fast]\nepoch = 2\n"))
    with pytest.raises(ZooError, match="unknown table"):
        Presets().load_file(write(tmp_path / "b.toml", "[modles.x]\ncomponent='mlp'\n"))
    with pytest.raises(ZooError, match=r"epochs: Input should be greater than 0"):
        Presets().load_file(write(tmp_path / "c.toml", "[recipes.r]\nepochs=0\n"))


def test_a_name_defined_in_two_files_is_an_error_naming_both(tmp_path: Path) -> None:
    user = write(tmp_path / "mine.toml", "[models.mlp-512]\ncomponent='mlp'\n")
    with pytest.raises(ZooError) as error:
        load_catalog(env={}, registry_files=[user])
    assert "registry.toml" in str(error.value) and "mine.toml" in str(error.value)


def test_a_name_that_another_files_pattern_makes_is_refused_in_either_order(tmp_path: Path) -> None:
    """mlp-8 in a user's file would silently replace the instance of zoo's mlp-{width} (784-8-8-10) for that width."""
    mine = write(tmp_path / "mine.toml", "[models.mlp-8]\ncomponent='mlp'\nparams={hidden=[8]}\n")
    with pytest.raises(ZooError, match=r"\[models.mlp-8\] would replace mlp-8, which mlp-<width> in .*registry.toml already makes"):
        load_catalog(env={}, registry_files=[mine])
    pattern = write(tmp_path / "pattern.toml", "[models.\"wide-{n}\"]\ncomponent='mlp'\nparams={hidden=['{n}']}\n")
    single = write(tmp_path / "single.toml", "[models.wide-8]\ncomponent='mlp'\nparams={hidden=[9]}\n")
    with pytest.raises(ZooError, match=r"single.toml: \[models.wide-8\] would replace wide-8, which wide-<n> in .*pattern.toml"):
        load_catalog(env={}, registry_files=[pattern, single])
    with pytest.raises(ZooError, match=r"pattern.toml: \[models.wide-\{n\}\] would also make wide-8, which .*single.toml defines"):
        load_catalog(env={}, registry_files=[single, pattern])
    other = write(tmp_path / "other.toml", "[models.\"wide-{m}\"]\ncomponent='mlp'\nparams={hidden=['{m}', '{m}']}\n")
    with pytest.raises(ZooError, match=r"other.toml: \[models.wide-\{m\}\] makes the same names as wide-<n> in .*pattern.toml"):
        load_catalog(env={}, registry_files=[pattern, other])
    both = write(tmp_path / "both.toml", "[models.\"wide-{n}\"]\ncomponent='mlp'\nparams={hidden=['{n}']}\n"
                                         "[models.wide-8]\ncomponent='mlp'\nparams={hidden=[9]}\n")
    assert load_catalog(env={}, registry_files=[both]).resolve("model", "wide-8").params == {"hidden": [9]}  # one file's own choice


def test_a_bad_value_in_a_preset_is_said_to_come_from_the_preset_and_a_misspelt_component_gets_a_hint(tmp_path: Path) -> None:
    import zoo

    mine = write(tmp_path / "mine.toml", "[models.m]\ncomponent='mlp'\nparams={dropout=2}\n[recipes.r]\nmodel='m'\nepochs=1\n"
                                         "[models.typo]\ncomponent='mlpp'\n")
    for given in ({"recipe": "r"}, {"model": "m"}):
        with pytest.raises(ZooError) as error:
            zoo.resolve(registry_files=[mine], **given)
        assert str(error.value).endswith(f"(got 2). The value comes from preset 'm' in {mine}."), error.value  # not "from recipe 'r'"
    with pytest.raises(ZooError) as error:
        zoo.resolve(registry_files=[mine], model="m", sets=["model.dropout=3"])
    assert "(got 3)." in str(error.value) and "preset" not in str(error.value)  # the value given with it: no blame on the file
    with pytest.raises(ZooError, match=r"builds model 'mlpp', which no loaded plugin provides \(did you mean mlp\?\)"):
        zoo.resolve(registry_files=[mine], model="typo")


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


# ---- Results carry their machine (issue 15) ----

RESULTS = (
    '[models.tiny]\ncomponent = "mlp"\nparams = { hidden = [8] }\n[models.tiny.results]\n'
    '"fashion-mnist/tuned" = [\n'
    '    { accuracy = 0.912, accuracies = [0.911, 0.912, 0.913], seconds = 50.0, wall = 58.0, reference_epochs = 19.5, '
    'precision = "fp32", machine = "AMD EPYC", device = "cpu", cores = 2, native_bf16 = false, measured = "2026-12-01" },\n'
    '    { accuracy = 0.909, seconds = 30.0, reference_epochs = 11.0, precision = "bf16", machine = "AMD EPYC", device = "cpu", '
    'cores = 2, native_bf16 = true, measured = "2026-11-27" },\n'
    ']\n'
)


def test_results_from_before_machines_still_load_as_one_entry(tmp_path: Path) -> None:
    presets = Presets()
    presets.load_file(write(tmp_path / "old.toml", '[models.tiny]\ncomponent = "mlp"\n[models.tiny.results]\n'
                                                    '"fashion-mnist/quickstart" = { accuracy = 0.5, seconds = 12.4 }\n'))
    (result,) = presets.find("model", "tiny")[1].results["fashion-mnist/quickstart"]
    assert (result.accuracy, result.seconds, result.machine, result.where()) == (0.5, 12.4, "", "")


def test_results_per_machine_load_and_describe_their_machine(tmp_path: Path) -> None:
    presets = Presets()
    presets.load_file(write(tmp_path / "new.toml", RESULTS))
    fp32, bf16 = presets.find("model", "tiny")[1].results["fashion-mnist/tuned"]
    assert fp32.accuracies == [0.911, 0.912, 0.913] and fp32.reference_epochs == 19.5
    assert fp32.where() == "AMD EPYC, 2 cores, a CPU without native bf16" and bf16.where() == "AMD EPYC, 2 cores, a CPU with native bf16"


def test_a_result_field_out_of_range_is_an_error_naming_it(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", RESULTS.replace("accuracies = [0.911", "accuracies = [91.1"))
    with pytest.raises(ZooError, match=r"results.*accuracies"):
        Presets().load_file(bad)


def test_select_results_prefers_this_kind_of_machine_else_shows_all(tmp_path: Path) -> None:
    from zoo.precision import Machine
    from zoo.presets import select_results

    presets = Presets()
    presets.load_file(write(tmp_path / "new.toml", RESULTS))
    measured = presets.find("model", "tiny")[1].results["fashion-mnist/tuned"]
    no_bf16, with_bf16 = Machine("AMD EPYC", "cpu", 64, False), Machine("AMD EPYC", "cpu", 2, True)
    assert select_results(measured, [no_bf16]) == ([measured[0]], True)
    assert select_results(measured, [with_bf16]) == ([measured[1]], True)
    assert select_results(measured, [Machine("Intel Xeon", "cpu", 2, False)]) == (measured, False)
    gpu = measured[0].model_copy(update={"machine": "NVIDIA H100", "device": "cuda", "native_bf16": None})
    assert select_results([gpu], [no_bf16, Machine("NVIDIA H100", "cuda", None, None)]) == ([gpu], True)


@pytest.mark.parametrize(("cpu", "shown", "hidden"), [
    ("AMD EPYC", ["91.20% (3 seeds: 91.10%-91.30%) in 50 s, 19.5 reference epochs, fp32 on AMD EPYC, 2 cores, a CPU without native bf16"], ["bf16 on"]),
    ("Intel Xeon", ["fp32 on AMD EPYC, 2 cores, a CPU without native bf16", "90.90% in 30 s, 11.0 reference epochs, bf16 on AMD EPYC, 2 cores, a CPU with native bf16"], []),
])
def test_list_shows_this_machines_result_when_there_is_one_else_all(cpu: str, shown: list[str], hidden: list[str], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner

    from zoo import listing
    from zoo.cli import cli
    from zoo.precision import Machine

    monkeypatch.setattr(listing, "local_machines", lambda: [Machine(cpu, "cpu", 2, False)])
    registry = write(tmp_path / "r.toml", RESULTS)
    output = CliRunner().invoke(cli, ["list", "models", "tiny", "--registry", str(registry)]).output
    for text in shown:
        assert text in output
    for text in hidden:
        assert text not in output
    data = json.loads(CliRunner().invoke(cli, ["list", "models", "tiny", "--registry", str(registry), "--json"]).output)["presets"][0]
    assert [r["this_machine"] for r in data["all_results"]["fashion-mnist/tuned"]] == ([True, False] if cpu == "AMD EPYC" else [False, False])
    assert data["results"]["fashion-mnist/tuned"]["measured"] == "2026-12-01"


def test_results_of_another_version_of_the_recipe_are_not_quoted(tmp_path: Path) -> None:
    """A result records its recipe's fingerprint: once the recipe changes, its old figures no longer describe it."""
    import json

    from click.testing import CliRunner

    from zoo.cli import cli
    from zoo.presets import recipe_fingerprint

    presets = Presets()
    presets.load_file(shipped_registry())
    current = recipe_fingerprint(presets.recipe("tuned"))
    assert current == recipe_fingerprint(presets.recipe("tuned").model_copy(update={"help": "reworded"}))  # the help is not the recipe
    assert current != recipe_fingerprint(presets.recipe("tuned").model_copy(update={"epochs": 23}))
    rows = "".join(f'    {{ accuracy = {accuracy}, seconds = 30.0, machine = "M{i}", {recipe}measured = "2026-12-0{i}" }},\n'
                   for i, (accuracy, recipe) in enumerate([(0.901, 'recipe = "0123456789ab", '), (0.902, f'recipe = "{current}", '), (0.903, "")], 1))
    registry = write(tmp_path / "r.toml", f'[models.tiny]\ncomponent = "mlp"\n[models.tiny.results]\n"fashion-mnist/tuned" = [\n{rows}]\n')
    output = CliRunner().invoke(cli, ["list", "models", "tiny", "--registry", str(registry)]).output
    assert "90.20%" in output and "90.30%" in output and "90.10%" not in output
    data = json.loads(CliRunner().invoke(cli, ["list", "models", "tiny", "--registry", str(registry), "--json"]).output)["presets"][0]
    assert [r["accuracy"] for r in data["all_results"]["fashion-mnist/tuned"]] == [0.902, 0.903]


def test_the_tuned_recipe_chooses_its_precision_by_hardware_and_quickstart_stays_fp32() -> None:
    presets = Presets()
    presets.load_file(shipped_registry())
    assert presets.recipe("tuned").precision == "auto" and presets.recipe("tuned").model == "mlp-512"
    assert presets.recipe("quickstart").precision in (None, "fp32")


def test_of_two_results_measured_the_same_day_the_precision_auto_gives_here_is_quoted() -> None:
    from zoo.listing import quoted_results
    from zoo.precision import Machine
    from zoo.presets import Result

    both = [Result(accuracy=acc, seconds=30.0, precision=precision, machine="AMD EPYC", cores=2, native_bf16=True, measured="2026-11-29")
            for acc, precision in ((0.909, "bf16"), (0.910, "fp32"))]
    for bf16, expected in ((True, "bf16"), (False, "fp32")):
        quoted = quoted_results({"fashion-mnist/tuned": both}, [Machine("AMD EPYC", "cpu", 2, bf16)], {})["results"]
        assert quoted["fashion-mnist/tuned"]["precision"] == expected


def test_a_byte_order_mark_is_no_error(tmp_path: Path) -> None:
    """Some editors (Notepad) begin a UTF-8 file with a byte-order mark."""
    path = tmp_path / "mine.toml"
    path.write_bytes("\ufeff[models.my-64]\ncomponent = \"mlp\"\nparams = { hidden = [64, 64] }\n".encode())
    catalog = load_catalog(registry_files=[path])
    assert catalog.resolve("model", "my-64").params == {"hidden": [64, 64]}


@pytest.mark.parametrize("name", ['""', '" padded "', '"tab\\tname"', '"' + "x" * 101 + '"'])
def test_a_name_nobody_can_type_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "odd.toml"
    path.write_text(f'[models.{name}]\ncomponent = "mlp"\n')
    with pytest.raises(ZooError, match=r"cannot be a name: names are 1 to 100 printable characters, not beginning or ending with a space"):
        Presets().load_file(path)
