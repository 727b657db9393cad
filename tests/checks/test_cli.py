"""`augmentgen check` on real files: WebDataset shard folders (with manifest) and a saved generator folder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image
from typer.testing import CliRunner

from augmentgen.checks.inputs import is_generator_folder, load_generated, load_real, read_shards
from augmentgen.checks.job import load_check_config, run_check_job
from augmentgen.cli import app
from augmentgen.data import ArrayDataset


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="PNG")
    return buf.getvalue()


def write_shard_folder(root: Path, ds: ArrayDataset, per_shard: int, *, failed: bool = True) -> Path:
    """Shards as `augmentgen generate` lays them out: NAME-{i:06d}.tar + manifest.json (one failed entry)."""
    root.mkdir(parents=True, exist_ok=True)
    shards: dict[str, dict] = {}
    for i, s in enumerate(range(0, len(ds), per_shard)):
        name = f"test-{i:06d}.tar"
        with wds.TarWriter(str(root / name), mtime=0) as w:
            for j in range(s, min(s + per_shard, len(ds))):
                w.write(
                    {
                        "__key__": f"{i:06d}-{j:06d}",
                        "image.png": _png(ds.images[j]),
                        "cls": int(ds.labels[j]),
                        "json": {"source": "test"},
                    }
                )
        shards[str(i)] = {"file": name, "state": "done", "samples": min(per_shard, len(ds) - s)}
    if failed:
        with wds.TarWriter(
            str(root / "stray-000099.tar"), mtime=0
        ) as w:  # not in the manifest: must be ignored
            w.write({"__key__": "x", "image.png": _png(ds.images[0]), "cls": 0})
        shards["99"] = {"file": "stray-000099.tar", "state": "failed", "error": "boom"}
    (root / "manifest.json").write_text(
        json.dumps(
            {"format_version": 1, "recipe": {}, "recipe_sha256": "x", "count": len(shards), "shards": shards}
        )
    )
    return root


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory: pytest.TempPathFactory, heldout_small) -> Path:
    return write_shard_folder(tmp_path_factory.mktemp("shards"), heldout_small, 128)


def test_read_shards_roundtrip_and_manifest(shard_dir: Path, heldout_small) -> None:
    images, labels = read_shards(shard_dir)
    assert np.array_equal(images, heldout_small.images)  # PNG is lossless; the failed stray shard is skipped
    assert np.array_equal(labels, heldout_small.labels)
    images, _ = read_shards(shard_dir, limit=10)
    assert len(images) == 10
    ds = load_generated(shard_dir, heldout_small.classes)
    assert ds.classes == heldout_small.classes and len(ds) == len(heldout_small)


def test_read_shards_errors(tmp_path: Path, heldout_small) -> None:
    with pytest.raises(ValueError, match="no shards"):
        read_shards(tmp_path)
    with wds.TarWriter(str(tmp_path / "a.tar")) as w:
        w.write({"__key__": "k", "image.png": _png(heldout_small.images[0])})
    with pytest.raises(ValueError, match="no 'cls'"):
        read_shards(tmp_path)
    with pytest.raises(ValueError, match="classes"):
        load_generated(write_shard_folder(tmp_path / "s", heldout_small, 500, failed=False), ["a", "b"])
    with pytest.raises(ValueError, match="does not exist"):
        load_generated(tmp_path / "missing", ["a"])


def test_load_real_specs(tmp_path: Path) -> None:
    assert load_real("digits").name == "digits/train"
    assert len(load_real("fashion-mnist:test")) == 10_000
    with pytest.raises(ValueError, match="not a known source"):
        load_real("imagenet")


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from augmentgen.generators.cgan import CGANConfig, ConditionalGAN

    d = tmp_path_factory.mktemp("gen") / "cgan"
    ConditionalGAN(CGANConfig(g_width=8, d_width=8, latent_dim=16, embed_dim=8)).save_pretrained(d)
    return d


def test_generator_folder_is_sampled_balanced_and_seeded(gen_dir: Path, heldout_small) -> None:
    import augmentgen.generators  # noqa: F401  (registers cgan)

    assert is_generator_folder(gen_dir)
    a = load_generated(gen_dir, heldout_small.classes, n=50, seed=1)
    b = load_generated(gen_dir, heldout_small.classes, n=50, seed=1)
    c = load_generated(gen_dir, heldout_small.classes, n=50, seed=2)
    assert a.images.shape == (50, 28, 28, 1) and a.images.dtype == np.uint8
    assert np.array_equal(a.labels, np.arange(50) % 10)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)


def test_job_spread_over_seeds(gen_dir: Path, real_small, tmp_path: Path) -> None:
    import augmentgen.generators  # noqa: F401

    cfg = load_check_config(
        None, {"features": "pixels", "checks": ["fid", "duplicates"], "gates": ["fid >= 0"]}
    )
    job = run_check_job([gen_dir], real_small, config=cfg, out_dir=tmp_path, n=60, seeds=3)
    assert len(job.runs) == 3 and job.spread["fid"]["n"] == 3 and job.spread["fid"]["std"] > 0
    m = json.loads(job.paths["metrics"].read_text())
    assert set(m["runs"]) == {f"{gen_dir}@seed{s}" for s in range(3)}
    assert m["passed"] is True


def test_load_check_config_from_recipe_yaml(tmp_path: Path) -> None:
    p = tmp_path / "recipe.yaml"
    p.write_text("data: {}\nchecks:\n  features: pixels\n  gates: {recall: '>= 0.5'}\n  k: 3\n")
    cfg = load_check_config(p, {"gates": ["fid <= 9"]})
    assert cfg.features == "pixels" and cfg.k == 3
    assert cfg.gates == ["recall >= 0.5", "fid <= 9"]
    p.write_text("checks:\n  kk: 3\n")
    with pytest.raises(ValueError, match="kk"):
        load_check_config(p)


runner = CliRunner()


def _cli(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, ["check", *args])
    flat = " ".join(r.stdout.split())  # rich wraps long lines at the terminal width
    return r.exit_code, r.stdout, flat


def test_cli_passes_writes_outputs_and_prints_json(shard_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    code, stdout, _ = _cli(
        str(shard_dir),
        "--real",
        "fashion-mnist:train",
        "--n-real",
        "400",
        "--features",
        "pixels",
        "--gate",
        "recall >= 0.3",
        "--gate",
        "near_copy_fraction <= 0.01",
        "--out",
        str(out),
        "--no-cache",
        "--threads",
        "1",
        "--json",
    )
    assert code == 0, stdout
    m = json.loads(stdout)
    assert m["passed"] is True and m["n_generated"] == 300 and m["n_real"] == 400
    assert (out / "report.html").is_file() and json.loads((out / "metrics.json").read_text())[
        "passed"
    ] is True


def test_cli_fails_naming_the_gate(shard_dir: Path, tmp_path: Path) -> None:
    code, _, text = _cli(
        str(shard_dir),
        "--real",
        "fashion-mnist:train",
        "--n-real",
        "300",
        "--features",
        "pixels",
        "--gate",
        "recall >= 0.999",
        "--out",
        str(tmp_path / "r"),
        "--no-cache",
    )
    assert code == 1
    assert "gate failed: recall >= 0.999" in text


def test_cli_bad_input_exits_2(tmp_path: Path, shard_dir: Path) -> None:
    code, _, text = _cli(str(tmp_path / "nope"), "--real", "digits", "--out", str(tmp_path / "r"))
    assert code == 2 and "does not exist" in text
    code, _, text = _cli(str(shard_dir), "--real", "nowhere", "--out", str(tmp_path / "r"))
    assert code == 2 and "not a known source" in text
    code, _, text = _cli(
        str(shard_dir), "--real", "digits", "--gate", "fid => 3", "--out", str(tmp_path / "r")
    )
    assert code == 2 and "gate" in text
    code, _, text = _cli(str(shard_dir), "--real", "digits", "--gate", "recal >= 0.5", "--out", str(tmp_path / "r"))
    assert code == 2 and "unknown metric 'recal' (did you mean 'recall'?)" in " ".join(text.split())
    r = runner.invoke(app, ["check", str(shard_dir), "--real", "digits", "--n-real", "1", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--n-real" in r.stderr  # typer's usage error, before anything is loaded


def test_job_measures_reconstruction_of_a_cvae(tmp_path: Path, real_small) -> None:
    import augmentgen.generators  # noqa: F401
    from augmentgen.generators.cvae import ConditionalVAE, CVAEConfig

    d = tmp_path / "cvae"
    ConditionalVAE(CVAEConfig(latent_dim=8, width=8)).save_pretrained(d)
    cfg = load_check_config(
        None, {"features": "pixels", "checks": ["fid"], "gates": ["ssim >= 0.99", "psnr >= 0"]}
    )
    job = run_check_job([d], real_small, config=cfg, out_dir=None, n=50)
    res = {r.details["key"]: r for r in job.run.results}
    assert {"fid", "psnr", "ssim"} <= set(res)
    assert res["psnr"].passed and not res["ssim"].passed  # an untrained CVAE reconstructs badly
    assert -1.0 <= res["ssim"].value < 0.99


def test_job_resizes_real_images_to_the_generated_shape(gen_dir: Path, real_small) -> None:
    """A generator of 28 px gray images checked against 32 px RGB real images (a folder of originals)."""
    import augmentgen.generators  # noqa: F401
    from augmentgen.data import conform

    big = conform(real_small, size=32, mode="RGB")
    cfg = load_check_config(None, {"features": "pixels", "checks": ["fid", "memorization"]})
    said: list[str] = []
    job = run_check_job([gen_dir], big, config=cfg, out_dir=None, n=50, train=big, log=said.append)
    same = run_check_job([gen_dir], real_small, config=cfg, out_dir=None, n=50)
    assert sum("32x32x3 images resized to the generated 28x28x1" in s for s in said) == 2  # real and train
    got = {r.details["key"]: r.value for r in job.run.results}
    want = {r.details["key"]: r.value for r in same.run.results}
    # round trip 28 -> 32 -> 28 and gray -> RGB -> gray: close to, not equal to, the originals' figures
    assert got.keys() == want.keys() and got["fid"] == pytest.approx(want["fid"], rel=0.1)
