"""Check an output folder against its manifest: every shard present, whole, with the listed sha256, counts and decodable images."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from augmentgen.shards.manifest import MANIFEST, read_manifest, shard_key
from augmentgen.shards.reader import decode_sample, iter_raw_samples
from augmentgen.shards.writer import TMP_MARK


@dataclass(frozen=True)
class Fault:
    """One problem: the shard file (or the manifest), the member when known, and what is wrong."""

    shard: str
    problem: str
    member: str | None = None

    def __str__(self) -> str:
        where = self.shard if self.member is None else f"{self.shard}: {self.member}"
        return f"{where}: {self.problem}"


@dataclass
class VerifyReport:
    """Result of ``verify_shards``."""

    out: Path
    shards: int = 0
    samples: int = 0
    faults: list[Fault] = field(default_factory=list)
    complete: bool = False

    @property
    def ok(self) -> bool:
        return not self.faults


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_shards(out: str | Path, *, decode: bool = True) -> VerifyReport:
    """Check every shard of ``out`` against ``out/manifest.json``.

    Args:
        out: an output folder of ``write_shards``.
        decode: also decode every image, cls and json member (slower; sha256 alone catches corruption).

    Example:
        >>> report = verify_shards("out/digits")  # doctest: +SKIP
        >>> report.ok, [str(f) for f in report.faults]  # doctest: +SKIP
        (True, [])
    """
    out = Path(out)
    report = VerifyReport(out=out)
    try:
        manifest = read_manifest(out)
    except ValueError as e:
        report.faults.append(Fault(MANIFEST, str(e)))
        return report
    if manifest is None:
        why = (
            f"{out} does not exist" if not out.exists()
            else f"{out} is a file, not an output folder" if not out.is_dir()
            else f"no {MANIFEST} in {out} (not an output folder of augmentgen generate)"
        )  # fmt: skip
        report.faults.append(Fault(MANIFEST, why))
        return report
    report.complete = manifest.complete
    listed: set[str] = set()
    name_re = re.compile(r"^(?P<name>.+)-\d{6}\.tar$")
    for i in range(manifest.count):
        entry = manifest.shards.get(shard_key(i))
        if entry is None:
            report.faults.append(Fault(f"shard {i}", "not written yet (run generate --resume)"))
            continue
        listed.add(entry.file)
        if entry.state == "failed":
            report.faults.append(Fault(entry.file, f"failed when written: {entry.error}"))
            continue
        path = out / entry.file
        if not path.is_file():
            report.faults.append(Fault(entry.file, "listed as done but the file is missing"))
            continue
        report.shards += 1
        digest = _sha256(path)
        if digest != entry.sha256:
            report.faults.append(
                Fault(
                    entry.file, f"sha256 {digest[:12]}... differs from the manifest's {entry.sha256[:12]}..."
                )
            )
        count = 0
        classes: Counter[str] = Counter()
        last: str | None = None
        broken = False
        samples = iter_raw_samples(path)
        while True:
            try:
                raw = next(samples, None)
            except ValueError as e:  # the tar itself is damaged: name the last whole sample
                member = "at the start" if last is None else f"after sample {last}"
                report.faults.append(Fault(entry.file, str(e).replace(f"{path}: ", ""), member))
                broken = True
                break
            if raw is None:
                break
            last = raw["__key__"]
            count += 1
            if "cls" in raw:
                classes[raw["cls"].decode(errors="replace")] += 1
            if decode:
                try:
                    decode_sample(raw)
                except ValueError as e:  # the message names the member
                    report.faults.append(Fault(entry.file, str(e).replace(f"{path}: ", "")))
        if broken:
            continue
        report.samples += count
        if count != entry.samples:
            report.faults.append(
                Fault(entry.file, f"holds {count} samples, the manifest says {entry.samples}")
            )
        if dict(sorted(classes.items())) != dict(sorted(entry.classes.items())):
            report.faults.append(
                Fault(entry.file, f"class counts {dict(classes)} differ from the manifest's {entry.classes}")
            )
    for p in sorted(out.iterdir()):
        m = name_re.match(p.name)
        if m and p.name not in listed and m["name"] == manifest.recipe.get("shards", {}).get("name"):
            report.faults.append(
                Fault(p.name, "is not listed in the manifest (an interrupted run: finish it with --resume)")
            )
        elif TMP_MARK in p.name and p.name.endswith(tuple("0123456789")) and ".tar" in p.name:
            report.faults.append(Fault(p.name, "temporary file of an interrupted run (removed by --resume)"))
    return report
