"""Recipe models: strict keys with dotted paths in errors, the hash covers output fields only, YAML loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from augmentgen.shards.config import GenerateRecipe, RunConfig, ShardsConfig, load_recipe, recipe_from_dict

BASE = {"shards": {"count": 2, "size": 10}, "source": {"kind": "dataset", "name": "digits"}}


def test_unknown_key_is_rejected_with_its_path() -> None:
    with pytest.raises(ValueError, match=r"shards\.sizee"):
        recipe_from_dict({**BASE, "shards": {"count": 2, "sizee": 10}})


def test_missing_sections_are_named() -> None:
    with pytest.raises(ValueError, match=r"missing section\(s\) \['source'\]"):
        recipe_from_dict({"shards": {"count": 1}})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "gif"}, "shards.format"),
        ({"count": 0}, "shards.count"),
        ({"name": "a/b"}, "shards.name"),
        ({"quality": 101}, "shards.quality"),
    ],
)
def test_bad_values_name_their_field(change: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        recipe_from_dict({**BASE, "shards": {"count": 2, **change}})


def test_a_dataset_split_is_one_the_loaders_know() -> None:
    with pytest.raises(ValueError, match=r"source.dataset.split.*'train', 'test' or 'all'"):
        recipe_from_dict({**BASE, "source": {"kind": "dataset", "name": "digits", "split": ""}})


def test_source_needs_exactly_one_of_name_and_target() -> None:
    with pytest.raises(ValueError, match="exactly one of 'name' and 'target'"):
        recipe_from_dict({**BASE, "source": {"kind": "dataset", "name": "digits", "target": "a.b:c"}})
    with pytest.raises(ValueError, match="package.module:attribute"):
        recipe_from_dict({**BASE, "source": {"kind": "dataset", "target": "no_colon"}})


def test_hash_ignores_run_options_and_follows_output_fields() -> None:
    a = recipe_from_dict(BASE)
    b = recipe_from_dict({**BASE, "run": {"workers": 4, "distributor": "ray", "threads": 3}})
    c = recipe_from_dict({**BASE, "shards": {"count": 2, "size": 10, "seed": 1}})
    assert a.sha256() == b.sha256() != c.sha256()
    assert a.sha256({"weights": "x"}) != a.sha256({"weights": "y"})


def test_defaults_are_documented_values() -> None:
    s = ShardsConfig(count=1)
    assert (s.name, s.size, s.format, s.batch_size, s.quality) == ("synthetic", 1000, "png", 256, 95)
    assert s.file_name(12) == "synthetic-000012.tar"
    assert RunConfig().workers == 0  # auto: one forked process per core for a CPU source


def test_yaml_round_trip_and_other_sections_are_left_alone(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(
        "shards: {name: d, count: 3, size: 5, format: jpg}\n"
        "source: {kind: generator, name: cgan, path: g/, classes: 3}\n"
        "pipeline:\n  transforms:\n    - {name: brightness}\n"
        "checks: {fidelity: true}\n"
    )
    r = load_recipe(p)
    assert isinstance(r, GenerateRecipe)
    assert r.shards.format == "jpg" and r.source.kind == "generator"
    assert r.source.class_ids() == [0, 1, 2]
    assert r.output_dict()["pipeline"] == {"transforms": [{"name": "brightness"}]}
    assert "run" not in r.output_dict()


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("shards: [1, 2\n")
    with pytest.raises(ValueError, match="bad.yaml: not valid YAML"):
        load_recipe(p)
    with pytest.raises(ValueError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_the_example_recipe_validates_and_builds_its_pipeline() -> None:
    from augmentgen.shards.sources import build_pipeline

    r = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "shards-fashion-mnist.yaml")
    assert (r.shards.count, r.shards.size, r.source.kind) == (60, 1000, "dataset")
    assert build_pipeline(r.pipeline) is not None


def test_recipe_file_errors_name_the_line_and_the_likely_field(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("shards:\n  count: 2\n  sise: 10\nsource:\n  kind: dataset\n  name: digits\n")
    with pytest.raises(ValueError) as e:
        load_recipe(p)
    assert str(e.value) == (
        f"{p}: invalid recipe\n  shards.sise (line 3): unknown key, not a field of this section (did you mean 'size'?)"
    )
