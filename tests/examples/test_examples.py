"""The examples run as users run them (a subprocess each, small settings) and their checks hold.

Each example checks its own output and exits 1 naming the failed check; these tests also read
the JSON summary on its last line and assert on the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str, expect_rc: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``examples/NAME`` with the venv's Python; fail with its output when the exit code differs."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == expect_rc, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def summary(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dataloader_dropin_same_epochs_for_any_worker_count() -> None:
    out = summary(
        run_example("dataloader_dropin.py", "--dataset", "digits", "--n", "200", "--workers", "0", "2")
    )
    assert out["images"] == 200 and out["workers"] == [0, 2]
    assert out["identical_across_workers"] is True
    assert out["changed_between_epochs"] > 0.5  # epoch 1 draws new parameters
    assert out["changed_from_original"] > 0.5  # the pipeline acts


def test_dataloader_dropin_rejects_a_single_epoch() -> None:
    proc = run_example("dataloader_dropin.py", "--dataset", "digits", "--epochs", "1", expect_rc=2)
    assert "--epochs must be at least 2" in proc.stderr


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("generate")
    proc = run_example(
        "generate_shards.py", "--dataset", "digits", "--per-class", "30", "--steps", "60",
        "--shards", "2", "--size", "100", "--workers", "2", "--out", str(out),
    )  # fmt: skip
    return out / "shards", summary(proc)


@pytest.mark.slow
def test_generate_shards_verify_and_read_back_balanced(shards: tuple[Path, dict[str, Any]]) -> None:
    folder, out = shards
    assert out["shards"] == 2 and out["samples"] == 200
    assert out["class_histogram"] == [20] * 10  # labels cycle over the 10 digits
    assert out["bytes_identical_across_workers"] is True
    assert sorted(p.name for p in folder.glob("*.tar")) == ["cvae-000000.tar", "cvae-000001.tar"]
    assert (folder / "manifest.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(("mix", "ops"), [("none", "none"), ("cutmix", "none"), ("none", "trivial_augment")])
def test_train_on_shards_beats_chance(shards: tuple[Path, dict[str, Any]], mix: str, ops: str) -> None:
    folder, _ = shards
    out = summary(
        run_example("train_on_shards.py", "--shards", str(folder), "--per-class", "30", "--epochs", "10", "--mix", mix,
                    "--synthetic-ops", ops)
    )
    assert out["dataset"] == "digits" and out["real_images"] == 300 and out["mix"] == mix
    assert out["samples_seen"]["real"] == 10 * 300
    assert abs(out["synthetic_share"] - 0.5) < 0.01
    assert out["test_accuracy"] >= out["chance"] + 0.3
    if ops == "none":
        assert out["synthetic_rows_changed"] == 0
    else:  # one op of fourteen per row; the identity and ops too weak for 8x8 digits leave some as they were
        assert 0.6 < out["synthetic_rows_changed"] < 1.0


@pytest.mark.slow
def test_train_on_shards_names_a_mismatch_of_shards_and_data(shards: tuple[Path, dict[str, Any]]) -> None:
    folder, _ = shards
    proc = run_example(
        "train_on_shards.py", "--shards", str(folder), "--dataset", "fashion_mnist", expect_rc=1
    )
    assert "shards hold (8, 8, 1) images but fashion_mnist has (28, 28, 1)" in proc.stderr
