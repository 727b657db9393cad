"""The main job end to end on digits-tiny: shards, verify, checks, evaluation, report; skip, refuse, resume after a kill."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augmentgen.recipes import load_recipe
from augmentgen.recipes.run import RunResult, run_recipe
from augmentgen.recipes.stages import STAGES, read_marker
from augmentgen.shards import verify_shards

TINY = Path(__file__).resolve().parents[2] / "recipes" / "digits-tiny.yaml"
# more, smaller shards than the recipe's own, so that a kill lands in the middle of the shard stage
KILL_SET = ["shards.count=12", "shards.size=100", "shards.batch_size=50"]


def _tars(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.tar"))}


def test_end_to_end(tiny_run: RunResult) -> None:
    out = tiny_run.out
    r = load_recipe(TINY)
    assert tiny_run.ran == list(STAGES) and tiny_run.gates_passed
    for stage in STAGES[:-1]:
        m = read_marker(out, stage)
        assert m is not None and m["recipe_sha256"] == r.sha256()
    for g in ("cvae", "cgan"):
        tars = sorted((out / "shards" / g).glob("*.tar"))
        assert [t.name for t in tars] == [f"digits-{g}-{i:06d}.tar" for i in range(r.shards.count)]
        rep = verify_shards(out / "shards" / g)
        assert rep.ok and rep.complete and rep.samples == r.shards.count * r.shards.size
        metrics = json.loads((out / "checks" / g / "metrics.json").read_text())
        assert "fid" in json.dumps(metrics) and metrics["recipe_sha256"] == r.sha256()
        assert (out / "checks" / g / "report.html").is_file()
    ev = json.loads((out / "evaluation.json").read_text())
    assert list(ev["arms"]) == ["real", "real_classical", "real_classical_synthetic", "synthetic"]
    n_real = 10 * r.data.n_per_class  # type: ignore[operator]
    sizes = {a: v["train_images"] for a, v in ev["arms"].items()}
    assert sizes == {
        "real": n_real,
        "real_classical": n_real * (1 + r.evaluate.classical_copies),
        "real_classical_synthetic": n_real * (1 + r.evaluate.classical_copies)
        + 10 * r.evaluate.synthetic_per_class,
        "synthetic": 10 * r.evaluate.synthetic_per_class,
    }
    for v in ev["arms"].values():
        assert 0.0 <= v["mean"] <= 1.0 and len(v["accuracy"]) == len(r.evaluate.seeds)
    assert ev["recipe_sha256"] == r.sha256()
    for name in ("classical_over_real", "synthetic_over_classical"):  # each gain, seed by seed too
        assert ev["paired"][name]["seeds"] == r.evaluate.seeds
        assert ev["paired"][name]["mean"] == pytest.approx(ev["gains"][name])
    page = (out / "report.html").read_text()
    assert r.sha256() in page and "Downstream evaluation" in page and "checks/cgan/report.html" in page
    assert "synthetic over classical: " in page and "per seed" in page
    assert (out / "recipe.sha256").read_text().strip() == r.sha256()
    assert load_recipe(out / "recipe.yaml") == r


def _cells(page: str) -> list[list[np.ndarray]]:
    """The decoded images of the report's sample table, row by row (one row per class)."""
    sec = page[page.index("What the generators drew") : page.index("Downstream evaluation")]
    return [
        [np.asarray(Image.open(io.BytesIO(base64.b64decode(m)))) for m in re.findall(r"base64,([A-Za-z0-9+/=]+)", row)]
        for row in sec.split("<tr>")[2:]
    ]


def test_report_shows_real_and_generated_samples_of_every_class(tiny_run: RunResult) -> None:
    from augmentgen.eval.train_job import load_data
    from augmentgen.shards import load

    r = load_recipe(TINY)
    train, _ = load_data(r.data)
    rows = _cells((tiny_run.out / "report.html").read_text())
    assert len(rows) == train.num_classes and all(len(row) == 3 for row in rows)  # real, cvae, cgan
    first = {g: {} for g in ("cvae", "cgan")}  # the first sample of each class in each generator's shards
    for g, got in first.items():
        for smp in load(tiny_run.out / "shards" / g).samples():
            got.setdefault(smp["label"], smp["image"])
    k = 56 // 8  # 8 px digits, enlarged 7 times
    for c, (real, cvae, cgan) in enumerate(rows):
        assert real.shape == (k * 8 + 2, 4 * (k * 8 + 1) + 1, 3) and cvae.shape == cgan.shape == (58, 6 * 57 + 1, 3)
        for cell, want in ((real, train.images[train.labels == c][0]), (cvae, first["cvae"][c]), (cgan, first["cgan"][c])):
            tile = cell[1 : 1 + k * 8 : k, 1 : 1 + k * 8 : k]  # the first tile, one pixel per source pixel
            assert np.array_equal(tile, np.repeat(want, 3, axis=2)), f"class {c}"


def test_report_names_a_shard_that_does_not_read_back(tiny_run: RunResult, tmp_path: Path) -> None:
    import shutil

    from augmentgen.recipes.report import _samples_section

    shutil.copytree(tiny_run.out / "shards", tmp_path / "shards")
    tar = sorted((tmp_path / "shards" / "cvae").glob("*.tar"))[0]
    data = bytearray(tar.read_bytes())
    start = data.index(b"\x89PNG")
    data[start : start + 40] = bytes(40)
    tar.write_bytes(bytes(data))
    section = _samples_section(tmp_path, load_recipe(TINY))
    assert "Samples not shown" in section and tar.name in section


def test_rerun_skips_done_stages_and_keeps_shards(tiny_run: RunResult) -> None:
    before = _tars(tiny_run.out / "shards")
    again = run_recipe(load_recipe(TINY), tiny_run.out)
    assert again.ran == ["report"] and again.skipped == list(STAGES[:-1])
    assert _tars(tiny_run.out / "shards") == before


def test_other_recipe_in_same_folder_is_refused(tiny_run: RunResult) -> None:
    other = load_recipe(TINY, ["shards.size=7"])
    with pytest.raises(ValueError, match="stage 'generate' was completed for another recipe"):
        run_recipe(other, tiny_run.out)


def test_changed_evaluation_reruns_only_evaluation(tiny_run: RunResult, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(tiny_run.out, out)
    res = run_recipe(load_recipe(TINY, ["evaluate.arms=[real]"]), out, stages=("train", "evaluate", "report"))
    assert res.skipped == ["train"] and res.ran == ["evaluate", "report"]
    assert list(json.loads((out / "evaluation.json").read_text())["arms"]) == ["real"]


def test_evaluation_filters_generated_images_by_the_reference_classifier(tiny_run: RunResult, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(tiny_run.out, out)
    sets = ["evaluate.arms=[synthetic]", "evaluate.synthetic_oversample=3"]
    run_recipe(load_recipe(TINY, sets), out, stages=("train", "evaluate"))
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["settings"]["synthetic_oversample"] == 3
    assert ev["arms"]["synthetic"]["train_images"] == 10 * load_recipe(TINY).evaluate.synthetic_per_class


@pytest.mark.slow
def test_killed_run_resumes_to_identical_shards(tiny_run: RunResult, tmp_path: Path) -> None:
    # reference: an uninterrupted run of the same recipe (in this process)
    ref = tmp_path / "ref"
    run_recipe(load_recipe(TINY, KILL_SET), ref, stages=("train", "generate"))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "augmentgen.cli", "run", str(TINY), "--out", str(out), "--quiet"]
    for s in KILL_SET:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    killed_mid_shards = False
    while proc.poll() is None and time.monotonic() < deadline:
        if list((out / "shards" / "cvae").glob("*.tar")):  # the shard stage has begun
            killed_mid_shards = read_marker(out, "generate") is None
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert killed_mid_shards
    done_before = len(list((out / "shards").rglob("*.tar")))
    assert done_before < 2 * 12
    res = run_recipe(load_recipe(TINY, KILL_SET), out, stages=("train", "generate", "verify"))
    assert res.skipped == ["train"]
    assert _tars(out / "shards") == _tars(ref / "shards")
    assert not list((out / "shards").rglob("*.tmp*"))


def test_ctrl_c_stops_the_run_with_a_hint_and_a_rerun_finishes_it(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group (the caller and its forked workers): one line, exit 130,
    no traceback from any process, no temporary file left, and the same command finishes the shards."""
    ref = tmp_path / "ref"
    run_recipe(load_recipe(TINY, KILL_SET), ref, stages=("train", "generate"))
    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "augmentgen.cli", "run", str(TINY), "--out", str(out)]
    for s in KILL_SET:
        cmd += ["--set", s]
    # the run starts with SIGINT at its default, as from a terminal: a test session launched as a
    # background job without job control ignores SIGINT, and a child would inherit that
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 (no threads here)
    )  # fmt: skip
    t0 = time.monotonic()
    sent: float | None = None  # seconds after the start when SIGINT went out
    while proc.poll() is None and time.monotonic() < t0 + 300:
        if list((out / "shards" / "cvae").glob("*.tar*")):  # a worker is writing the first shard
            os.killpg(proc.pid, signal.SIGINT)
            sent = time.monotonic() - t0
            break
        time.sleep(0.005)
    output, _ = proc.communicate(timeout=120)
    # what the test saw, for a failure
    seen = f"SIGINT sent {sent:.2f} s after the start" if sent is not None else "SIGINT never sent"
    assert proc.returncode == 130, f"{seen}; run ended after {time.monotonic() - t0:.2f} s\n{output}"
    assert "interrupted: the stages that finished are kept" in " ".join(output.split())
    assert "Traceback" not in output
    assert read_marker(out, "generate") is None and not list(out.rglob("*.tmp*"))
    res = run_recipe(load_recipe(TINY, KILL_SET), out, stages=("train", "generate"))
    assert res.skipped == ["train"] and _tars(out / "shards") == _tars(ref / "shards")


def test_evaluate_command_on_a_run_folder(tiny_run: RunResult, tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from augmentgen.cli import app

    out = tmp_path / "run"
    shutil.copytree(tiny_run.out, out)
    (out / "evaluation.json").unlink()
    res = CliRunner().invoke(app, ["evaluate", str(out), "--set", "evaluate.arms=[real, real_classical, synthetic]"])
    assert res.exit_code == 0, res.output
    assert "synthetic" in res.output and "skipped" in res.output  # train reused, not redone
    assert "classical over real: " in res.output and "synthetic over classical" not in res.output
    assert list(json.loads((out / "evaluation.json").read_text())["arms"]) == ["real", "real_classical", "synthetic"]


def test_from_pretrained_generator_is_loaded_not_trained(tiny_run: RunResult, tmp_path: Path) -> None:
    from augmentgen.recipes import Recipe

    data = load_recipe(TINY).resolved()
    data["generators"] = [
        dict(data["generators"][0], from_pretrained=str(tiny_run.out / "generators" / "cvae" / "model"))
    ]
    data["evaluate"].update(arms=["synthetic"], seeds=[0])
    r = Recipe.model_validate(data)
    out = tmp_path / "loaded"
    run_recipe(r, out, stages=("train", "generate", "evaluate"))
    assert not (out / "generators").exists()  # nothing was trained
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["pretrained_generators"] == ["cvae"] and list(ev["arms"]) == ["synthetic"]
    assert sorted(p.name for p in (out / "shards" / "cvae").glob("*.tar")) == [
        f"digits-cvae-{i:06d}.tar" for i in range(r.shards.count)
    ]


def test_ensemble_generator_runs_through_every_stage(tmp_path: Path) -> None:
    from augmentgen.generators import GeneratorEnsemble
    from augmentgen.recipes import Recipe

    data = load_recipe(TINY).resolved()
    data["generators"] = [dict(data["generators"][0], ensemble=2)]
    data["evaluate"].update(seeds=[0])
    r = Recipe.model_validate(data)
    res = run_recipe(r, tmp_path / "ens")
    gdir = tmp_path / "ens" / "generators" / "cvae"
    assert res.gates_passed and sorted(p.name for p in (gdir / "members").iterdir()) == ["0", "1"]
    gen = GeneratorEnsemble.from_pretrained(gdir / "model")
    assert len(gen.members) == 2
    rep = verify_shards(tmp_path / "ens" / "shards" / "cvae")
    assert rep.ok and rep.samples == r.shards.count * r.shards.size
    ev = json.loads((tmp_path / "ens" / "evaluation.json").read_text())
    assert ev["arms"]["synthetic"]["train_images"] == 10 * r.evaluate.synthetic_per_class
    done = json.loads((gdir / "done.json").read_text())
    assert done["ensemble"] == 2 and done["steps"] == 2 * r.generators[0].train.steps


def test_generators_trained_side_by_side_are_the_ones_trained_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """digits-tiny's two generators, and an ensemble of two next to a third generator (its members
    then train in the generator's own child, not in grandchildren), on one core and on two: the
    same weights byte for byte."""
    import hashlib

    from augmentgen.eval import forked
    from augmentgen.recipes import Recipe

    data = load_recipe(TINY).resolved()
    data["generators"][0] = dict(data["generators"][0], ensemble=2)
    r = Recipe.model_validate(data)
    real_pool = forked.ProcessPoolExecutor
    log = tmp_path / "pools.txt"  # a file, as a pool opened in a child must show here too

    def pool(n: int, **kw: object) -> object:
        with log.open("a") as f:
            f.write(f"{n}\n")
        return real_pool(n, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(forked, "ProcessPoolExecutor", pool)
    weights = {}
    for cores in (1, 2):
        monkeypatch.setattr(forked, "usable_cores", lambda c=cores: c)
        run_recipe(r, tmp_path / f"c{cores}", stages=["train"])
        g = tmp_path / f"c{cores}" / "generators"
        weights[cores] = {
            str(p.relative_to(g)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(g.rglob("*.safetensors"))
        }
    assert log.read_text().split() == ["2"]  # one pool, for the two generators; the members did not fork again
    assert len(weights[1]) >= 4 and weights[1] == weights[2]
    trained_cpu = 0.0
    for name in ("cvae", "cgan"):
        done = json.loads((tmp_path / "c2" / "generators" / name / "done.json").read_text())
        assert done["recipe_sha256"] == r.sha256()
        trained_cpu += done["train_cpu_seconds"]
    marker = read_marker(tmp_path / "c2", "train")
    assert marker is not None and marker["cpu_seconds"] >= trained_cpu  # the children's CPU is the stage's too


def test_an_rgb_image_folder_of_another_size_runs_through_every_stage(tmp_path: Path) -> None:
    """Your own photos: 3 classes of 40x30 RGB crops of the scikit-image photos, resized by data.image_size."""
    import cv2
    import skimage.data

    from augmentgen.recipes import Recipe
    from augmentgen.shards import load

    rng = np.random.default_rng(0)
    for name in ("astronaut", "coffee", "chelsea"):
        photo = getattr(skimage.data, name)()
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(24):
            y, x = rng.integers(0, photo.shape[0] - 120), rng.integers(0, photo.shape[1] - 160)
            crop = cv2.resize(photo[y : y + 120, x : x + 160], (40, 30), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(tmp_path / "photos" / name / f"{i:02d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    data = load_recipe(TINY).resolved()
    data["data"] = {"source": "image_folder", "root": str(tmp_path / "photos"), "image_size": 16, "n_per_class": 16}
    data["evaluate"].update(seeds=[0], synthetic_per_class=10)
    data["checks"]["n_real"] = 48
    res = run_recipe(Recipe.model_validate(data), tmp_path / "run")
    assert res.gates_passed
    for g in ("cvae", "cgan"):
        rep = verify_shards(tmp_path / "run" / "shards" / g, decode=True)
        assert rep.ok and rep.samples == data["shards"]["count"] * data["shards"]["size"]
        smp = next(iter(load(tmp_path / "run" / "shards" / g).samples()))
        assert smp["image"].shape == (16, 16, 3) and 0 <= smp["label"] < 3
        metrics = json.loads((tmp_path / "run" / "checks" / g / "metrics.json").read_text())
        assert np.isfinite(metrics["metrics"]["fid"]["value"]) and metrics["n_real"] == 15  # the held-out 20%: 5 a class
    ev = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert set(ev["arms"]) == {"real", "real_classical", "real_classical_synthetic", "synthetic"}
    assert ev["arms"]["real"]["train_images"] == 48
    html = (tmp_path / "run" / "report.html").read_text()
    assert all(name in html for name in ("astronaut", "coffee", "chelsea"))  # the folders name the classes
