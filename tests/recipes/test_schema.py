"""Recipe schema and loading: built-in recipes validate, round-trips, typed overrides, errors with field and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as hst

from augmentgen.recipes import Recipe, dump_recipe, field_docs, load_recipe, recipe_from_text
from augmentgen.recipes.stages import stage_hashes

ROOT = Path(__file__).resolve().parents[2]
MAIN_RECIPES = [
    "digits-tiny.yaml",
    "fashion-mnist.yaml",
    "fashion-mnist-diffusers.yaml",
    "fashion-mnist-lowdata.yaml",
    "fashion-mnist-prompted.yaml",
]
MINIMAL = "shards: {count: 2}\ngenerators: [{name: g, kind: cvae}]\n"


@pytest.mark.parametrize("name", MAIN_RECIPES)
def test_builtin_recipe_loads_and_round_trips(name: str) -> None:
    path = ROOT / "recipes" / name
    r = load_recipe(path)
    assert r.generators, f"{name} has no generators"
    assert path.read_text().startswith("#"), f"{name} needs a comment header (what it is for, what it costs)"
    again = recipe_from_text(dump_recipe(r))
    assert again == r
    assert again.sha256() == r.sha256()


def test_main_job_recipes_are_the_listed_ones() -> None:
    # every recipe with both 'generators' and 'shards' sections is a main-job recipe and must be tested above
    found = sorted(
        p.name
        for p in (ROOT / "recipes").glob("*.yaml")
        if {"generators", "shards"} <= set(yaml.safe_load(p.read_text()) or {})
    )
    assert found == sorted(MAIN_RECIPES)


def test_override_is_typed_and_changes_the_hash() -> None:
    base = recipe_from_text(MINIMAL)
    r = recipe_from_text(
        MINIMAL, overrides=["shards.count=5", "evaluate.seeds=[3, 4]", "generators.0.train.lr=0.01"]
    )
    assert r.shards.count == 5 and isinstance(r.shards.count, int)
    assert r.evaluate.seeds == [3, 4]
    assert r.generators[0].train.lr == 0.01
    assert r.sha256() != base.sha256()
    # run options never change the hash: they do not change what is written
    assert recipe_from_text(MINIMAL, overrides=["run.workers=3"]).sha256() == base.sha256()


def test_stage_hashes_follow_the_sections_they_read() -> None:
    base = stage_hashes(recipe_from_text(MINIMAL))
    ev = stage_hashes(recipe_from_text(MINIMAL, overrides=["evaluate.seeds=[7]"]))
    assert ev["train"] == base["train"] and ev["generate"] == base["generate"]
    assert ev["evaluate"] != base["evaluate"]
    sh = stage_hashes(recipe_from_text(MINIMAL, overrides=["shards.size=10"]))
    assert (
        sh["train"] == base["train"] and sh["generate"] != base["generate"] and sh["check"] != base["check"]
    )


@settings(max_examples=25, deadline=None)
@given(
    count=hst.integers(1, 10_000),
    seeds=hst.lists(hst.integers(0, 2**31), min_size=1, max_size=4),
    fmt=hst.sampled_from(["png", "jpg", "webp", "npy"]),
    copies=hst.integers(1, 9),
)
def test_dump_then_load_is_equal(count: int, seeds: list[int], fmt: str, copies: int) -> None:
    sets = [
        f"shards.count={count}",
        f"evaluate.seeds={seeds}",
        f"shards.format={fmt}",
        f"evaluate.classical_copies={copies}",
    ]
    r = recipe_from_text(MINIMAL, overrides=sets)
    assert recipe_from_text(dump_recipe(r)) == r


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        # unknown key: the field and the line of the key
        (MINIMAL + "shards_extra: 1\n", [], ["shards_extra (line 3)", "unknown key"]),
        (
            "shards:\n  count: 2\n  colour: red\ngenerators: [{name: g, kind: cvae}]\n",
            [],
            ["shards.colour (line 3)"],
        ),
        # wrong type, nested in a list
        (
            "shards: {count: 2}\ngenerators:\n  - name: g\n    kind: cvae\n    train:\n      steps: many\n",
            [],
            ["generators.0.train.steps (line 6)", "valid integer", "'many'"],
        ),
        # bad path
        (
            MINIMAL + "data:\n  source: fashion_mnist\n  root: /no/such/folder\n",
            [],
            ["data.root (line 5)", "does not exist"],
        ),
        (
            "shards: {count: 2}\ngenerators:\n  - {name: g, kind: cvae, from_pretrained: /no/such/model}\n",
            [],
            ["generators.0.from_pretrained (line 3)", "config.json"],
        ),
        # missing required field
        ("generators: [{name: g, kind: cvae}]\n", [], ["shards (line 1)", "required"]),
        # bad override: the field and the --set that gave it
        (MINIMAL, ["evaluate.seeds=abc"], ["evaluate.seeds (--set evaluate.seeds=abc)"]),
        (MINIMAL, ["shards.nope=1"], ["shards.nope (--set shards.nope=1)", "unknown key"]),
        # unknown op in the pipeline: the item's line, and the op it was likely meant to be
        (
            MINIMAL + "pipeline:\n  transforms:\n    - {name: rotat}\n",
            [],
            ["pipeline.transforms.0 (line 5)", "unknown op 'rotat' (did you mean 'rotate'?)"],
        ),
        (
            MINIMAL + "pipeline:\n  transforms:\n    - {name: affine, p: 1}\n    - {name: affine, degres: [1, 2]}\n",
            [],
            ["pipeline.transforms.1 (line 6)", "unknown key(s) ['degres'] for op 'affine' (did you mean 'degrees'?)"],
        ),
        # a misspelt key: the field it was likely meant to be, in a list item and through an override
        (
            "shards: {count: 2}\ngenerators:\n  - {name: g, kind: cvae, trian: {steps: 3}}\n",
            [],
            ["generators.0.trian (line 3)", "(did you mean 'train'?)"],
        ),
        (MINIMAL, ["evaluate.synthetic_shares=0.5"], ["(--set evaluate.synthetic_shares=0.5)", "did you mean 'synthetic_share'"]),
        (MINIMAL, ["generators.0.train.stpes=3"], ["generators.0.train.stpes (--set", "did you mean 'steps'"]),
        # MixUp / CutMix in the evaluation: a bad weight, and nothing to mix
        (
            MINIMAL + "evaluate:\n  label_mix:\n    cutmix_alpha: -1\n",
            [],
            ["evaluate.label_mix.cutmix_alpha (line 5)", "greater than or equal to 0"],
        ),
        (MINIMAL, ["evaluate.label_mix={mixup_alpha: 0, cutmix_alpha: 0}"], ["evaluate.label_mix", "both 0"]),
        # found by mutating the built-in recipes at random: each was accepted and failed (or ran) later
        (MINIMAL, ["generators.0.kind=cvea"], ["generators.0 (--set", "unknown generator kind 'cvea' (did you mean 'cvae'?)"]),
        (MINIMAL, ["generators.0.model.latent_dim=''"], ["generators.g.model: latent_dim: Input should be a valid integer"]),
        (MINIMAL, ["generators.0.model.kl_warmup_steps=[]"], ["generators.g.model: kl_warmup_steps"]),
        (MINIMAL, ["generators.0.train.lr=-1"], ["generators.0.train.lr (--set", "learning rates must be > 0"]),
        (MINIMAL, ["generators.0.train.lr={g: 0.001, d: 0}"], ["learning rates must be > 0"]),
        (MINIMAL, ["checks.features=effnet"], ["checks.features (--set checks.features=effnet)", "unknown feature space 'effnet' (did you mean 'effnet_lite0'?)"]),
        (MINIMAL, ["pipeline={transforms: 1.5}"], ["pipeline.transforms: must be a list of stages, got float"]),
        (
            MINIMAL,
            ["evaluate.synthetic_pipeline={transforms: [{name: trivial_augmnt}]}"],
            ["evaluate.synthetic_pipeline", "unknown op 'trivial_augmnt' (did you mean 'trivial_augment'?)"],
        ),
        (
            MINIMAL + "pipeline:\n  transforms:\n    - {name: one_of, transforms: {name: rotate}}\n",
            [],
            ["(one_of).transforms: must be a list of stages, got dict"],
        ),
    ],
)
def test_malformed_recipe_names_field_and_line(text: str, overrides: list[str], expected: list[str]) -> None:
    with pytest.raises(ValueError) as e:
        recipe_from_text(text, "bad.yaml", overrides)
    msg = str(e.value)
    assert msg.startswith("bad.yaml: invalid recipe")
    for part in expected:
        assert part in msg, f"{part!r} not in:\n{msg}"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [(["shards.count"], "must look like a.b.c=value"), (["generators.5.name=x"], "'5' is not an index")],
)
def test_malformed_override(overrides: list[str], expected: str) -> None:
    with pytest.raises(ValueError, match="bad --set") as e:
        recipe_from_text(MINIMAL, "r.yaml", overrides)
    assert expected in str(e.value)


def test_not_a_mapping_and_bad_yaml() -> None:
    with pytest.raises(ValueError, match="x.yaml: a recipe is a mapping"):
        recipe_from_text("- 1\n- 2\n", "x.yaml")
    with pytest.raises(ValueError, match="x.yaml: not valid YAML"):
        recipe_from_text("shards: {count: 2\n", "x.yaml")
    with pytest.raises(ValueError, match="recipe file not found"):
        load_recipe("/no/such/recipe.yaml")


def test_field_docs_cover_every_section() -> None:
    keys = [row[0].replace("[]", "") for row in field_docs()]
    for section in Recipe.model_fields:
        assert section in keys
    assert "generators.train.steps" in keys and "checks.gates" in keys and "evaluate.arms" in keys


def test_show_prints_the_resolved_recipe() -> None:
    cmd = [
        sys.executable,
        "-m",
        "augmentgen.cli",
        "show",
        str(ROOT / "recipes" / "digits-tiny.yaml"),
        "--set",
        "shards.count=3",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    head, body = out.split("\n", 1)
    r = recipe_from_text(body)
    assert r.shards.count == 3
    assert head == f"# recipe sha256: {r.sha256()}"
    bad = subprocess.run([*cmd[:-1], "shards.count=x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "shards.count" in bad.stdout and "--set shards.count=x" in bad.stdout


def test_reference_lists_every_field_with_the_docstring_fallback() -> None:
    from augmentgen.recipes.reference import reference_markdown

    text = reference_markdown()
    for key, *_ in field_docs():
        assert f"`{key}`" in text
    # ShardsConfig documents its fields in its docstring's Args: the reference picks them up
    assert "| `shards.count` | `int` | `required` | number of shards. |" in text


def test_every_recipe_field_says_what_it_does() -> None:
    from augmentgen.recipes.reference import reference_rows

    undocumented = [key for key, tname, _, doc in reference_rows() if not doc.strip()]
    assert undocumented == [], f"fields with no description (Field(description=...) or Args:): {undocumented}"


def test_label_mix_is_set_from_the_command_line() -> None:
    r = recipe_from_text(MINIMAL, overrides=["evaluate.label_mix={cutmix_alpha: 1.0, mixup_alpha: 0}"])
    assert r.evaluate.label_mix is not None and r.evaluate.label_mix.mixup_alpha == 0.0
    assert r.evaluate.label_mix.switch_prob == 0.5 and r.evaluate.label_mix.per_sample
    assert recipe_from_text(MINIMAL).evaluate.label_mix is None
    assert recipe_from_text(dump_recipe(r)) == r
