"""`verify_shards`: a clean folder passes; every kind of damage is a fault naming the shard (and member)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from augmentgen.shards.config import RunConfig
from augmentgen.shards.distribute import write_shards
from augmentgen.shards.verify import verify_shards

from .toy import make_recipe


@pytest.fixture
def out(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    cache = tmp_path_factory.getbasetemp() / "verify-clean"
    if not cache.exists():
        write_shards(make_recipe(count=3, size=10), cache, run=RunConfig(threads=1))
    shutil.copytree(cache, tmp_path / "out")
    return tmp_path / "out"


def _faults(out: Path) -> list[str]:
    return [str(f) for f in verify_shards(out).faults]


def test_clean_output_passes(out: Path) -> None:
    report = verify_shards(out)
    assert report.ok and report.complete and (report.shards, report.samples) == (3, 30)


def test_flipped_byte_is_a_sha_mismatch_and_an_undecodable_member(out: Path) -> None:
    p = out / "toy-000001.tar"
    data = bytearray(p.read_bytes())
    i = data.index(b"IDAT") + 10
    data[i] ^= 0xFF
    p.write_bytes(bytes(data))
    faults = _faults(out)
    assert any(f.startswith("toy-000001.tar: sha256") for f in faults)
    assert any(
        f.startswith("toy-000001.tar: 000001-000000.image.png: ") and "do not decode" in f for f in faults
    )
    assert verify_shards(out, decode=False).faults[0].shard == "toy-000001.tar"


def test_truncated_tar_names_the_last_whole_sample(out: Path) -> None:
    p = out / "toy-000002.tar"
    p.write_bytes(p.read_bytes()[:5000])
    faults = _faults(out)
    assert any("toy-000002.tar: after sample 000002-" in f and "truncated" in f for f in faults), faults


def test_missing_unlisted_and_leftover_files(out: Path) -> None:
    (out / "toy-000000.tar").rename(out / "toy-000007.tar")
    (out / "toy-000001.tar.tmp.1234").write_bytes(b"")
    faults = _faults(out)
    assert "toy-000000.tar: listed as done but the file is missing" in faults
    assert any(f.startswith("toy-000007.tar: is not listed in the manifest") for f in faults)
    assert any(f.startswith("toy-000001.tar.tmp.1234: temporary file") for f in faults)


def test_manifest_problems(out: Path) -> None:
    (out / "manifest.json").write_text("{not json")
    assert (
        _faults(out)[0].startswith("manifest.json: ")
        and "not a valid augmentgen shard manifest" in _faults(out)[0]
    )
    (out / "manifest.json").unlink()
    assert _faults(out) == [f"manifest.json: no manifest.json in {out} (not an output folder of augmentgen generate)"]
    assert _faults(out / "nope") == [f"manifest.json: {out / 'nope'} does not exist"]
    shard = next(out.glob("*.tar"))
    assert _faults(shard) == [f"manifest.json: {shard} is a file, not an output folder"]
