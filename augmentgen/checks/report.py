"""``metrics.json`` and a self-contained ``report.html`` (images embedded) for one check run; plots also as PNG.

The report reads top-down: a verdict, the metric table with gates, per-class figures and
sample grids, the worst memorization pairs, duplicate clusters, training curves.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augmentgen.checks import plots
from augmentgen.checks.base import METRICS
from augmentgen.checks.functional.stability import summarize_health_log
from augmentgen.checks.gates import result_key
from augmentgen.checks.suite import CheckRun
from augmentgen.core.check import CheckResult

logger = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1100px;color:#1d232b;padding:0 16px}
h1{font-size:1.5em;margin-bottom:4px} h2{margin-top:34px;border-bottom:1px solid #dde3ea;padding-bottom:4px;font-size:1.2em}
.verdict{padding:14px 18px;border-radius:8px;margin:16px 0;font-size:1.05em}
.pass{background:#e6f4ea;border:1px solid #8cc79b} .fail{background:#fdecea;border:1px solid #e59a92}
.info{background:#eef3fa;border:1px solid #a9bfdc}
.verdict b{font-size:1.15em} .verdict ul{margin:8px 0 0 0}
table{border-collapse:collapse;width:100%;font-size:.93em} td,th{padding:5px 9px;border-bottom:1px solid #e6eaef;text-align:left}
th{background:#f5f7fa} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap} td.muted{white-space:nowrap}
.ok{color:#1e7b34;font-weight:600} .bad{color:#b3261e;font-weight:600} .muted{color:#6b7785;font-size:.9em}
img{max-width:100%;image-rendering:pixelated} .cls{display:flex;gap:18px;align-items:center;margin:4px 0}
.cls .name{width:110px;font-size:.9em} figure{margin:8px 0} figcaption{font-size:.85em;color:#6b7785}
"""


def _b64(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _img(png: bytes, alt: str) -> str:
    return f'<img src="{_b64(png)}" alt="{html.escape(alt)}">'


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    return f"{v:.4g}" if a >= 1e-3 or a == 0 else f"{v:.2e}"


def verdict(run: CheckRun) -> tuple[str, str, list[str]]:
    """(css class, headline, bullet lines) summarising a run for a human."""
    gated = [r for r in run.results if r.threshold is not None]
    bullets: list[str] = []
    for key, text in (
        ("precision", "fidelity: precision {v} (share of generated samples that look real), recall {recall}"),
        (
            "label_agreement",
            "labels: the reference classifier agrees with {v} of the conditioning labels (worst class: {worst}); "
            "with {real_acc} of the real images' labels",
        ),
        ("class_spread_ratio", "diversity: worst class has {v} of the real within-class spread ({cls})"),
        ("near_copy_fraction", "memorization: {flagged} of {n} samples are near-copies of training images"),
        (
            "duplicate_fraction",
            "duplicates: {v} of the samples are redundant copies ({k} duplicate clusters)",
        ),
    ):
        r = run.get(key)
        if r is None:
            continue
        rec, worst, ratio = (
            run.get("recall"),
            run.get("label_agreement_min"),
            run.get("label_agreement_ratio"),
        )
        bullets.append(
            text.format(
                v=_fmt(r.value),
                recall=_fmt(rec.value) if rec else "n/a",
                worst=f"{worst.details.get('worst_class')} {_fmt(worst.value)}" if worst else "n/a",
                cls=r.details.get("worst_class", ""),
                flagged=r.details.get("flagged", "?"),
                n=r.details.get("n", "?"),
                k=r.details.get("n_clusters", "?"),
                real_acc=_fmt(ratio.details["real_agreement"]) if ratio is not None else "n/a",
            )
        )
    if run.unknown_gates:
        bullets.insert(
            0, f"gates on metrics that were not measured (count as failed): {', '.join(run.unknown_gates)}"
        )
    if not gated and not run.unknown_gates:
        return "info", f"No gates set: {len(run.results)} figures measured, nothing judged.", bullets
    bad = run.failed
    if run.passed:
        return "pass", f"PASS: all {len(gated)} gates hold.", bullets
    fails = [f"{r.name} = {_fmt(r.value)} fails {', '.join(r.details.get('gates', []))}" for r in bad]
    return (
        "fail",
        f"FAIL: {len(bad) + len(run.unknown_gates)} of {len(gated) + len(run.unknown_gates)} gates fail.",
        fails + bullets,
    )


def _metric_table(results: Sequence[CheckResult]) -> str:
    rows = []
    for r in results:
        info = METRICS.get(result_key(r))
        better = (
            {"higher": "higher", "lower": "lower", "one": "closest to 1"}.get(info.better, "") if info else ""
        )
        gate = ", ".join(r.details.get("gates", [])) or "-"
        status = (
            ""
            if r.threshold is None
            else ('<span class="ok">pass</span>' if r.passed else '<span class="bad">FAIL</span>')
        )
        extra = (
            f" &plusmn; {_fmt(float(r.details['std']))}" if isinstance(r.details.get("std"), float) else ""
        )
        rows.append(
            f"<tr><td>{html.escape(r.name)}</td><td class=num>{_fmt(r.value)}{extra}</td>"
            f"<td class=muted>{better}</td><td>{html.escape(gate)}</td><td>{status}</td></tr>"
        )
    return (
        "<table><tr><th>metric</th><th>value</th><th>better</th><th>gate</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _class_grids(run: CheckRun, per_class: int, pdir: Path) -> str:
    gen, real = run.generated, run.real
    parts = []
    for c, name in enumerate(real.classes):
        gi = np.flatnonzero(gen.labels == c)[:per_class]
        ri = np.flatnonzero(real.labels == c)[:per_class]
        if gi.size == 0:
            parts.append(
                f"<div class=cls><div class=name>{html.escape(name)}</div><span class=bad>no samples</span></div>"
            )
            continue
        g = plots.image_grid(gen.images[gi], ncol=per_class, scale=2, path=pdir / f"samples_class{c}.png")
        r = plots.image_grid(real.images[ri], ncol=per_class, scale=2) if ri.size else b""
        parts.append(
            f"<div class=cls><div class=name>{html.escape(name)}</div><div>{_img(g, f'generated {name}')}"
            f"<div class=muted>generated</div></div><div>{_img(r, f'real {name}') if r else ''}<div class=muted>real</div></div></div>"
        )
    return "".join(parts)


def _per_class_section(run: CheckRun, pdir: Path) -> str:
    series: dict[str, dict[str, float]] = {}
    for key, label in (
        ("label_agreement", "label agreement"),
        ("class_spread_ratio", "spread / real"),
        ("mode_coverage", "mode coverage"),
    ):
        r = run.get(key)
        if r is not None and isinstance(r.details.get("per_class"), Mapping):
            series[label] = {str(k): float(v) for k, v in r.details["per_class"].items()}
    out = ""
    if series:
        png = plots.per_class_bars(
            series, reference={"1.0": 1.0}, title="per class", path=pdir / "per_class.png"
        )
        out += f"<figure>{_img(png, 'per-class figures')}<figcaption>Per-class label agreement, within-class spread relative to the real data, and share of real modes covered.</figcaption></figure>"
    lab = run.get("label_agreement")
    if lab is not None and "confusion" in lab.details:
        png = plots.confusion_plot(
            lab.details["confusion"], lab.details["class_names"], path=pdir / "confusion.png"
        )
        out += f"<figure>{_img(png, 'confusion matrix')}<figcaption>Which class the reference classifier sees, per conditioning label.</figcaption></figure>"
    return out


def _memorization_section(run: CheckRun, pdir: Path) -> str:
    r = run.get("near_copy_fraction")
    if r is None:
        return "<p class=muted>Memorization was not measured.</p>"
    d = r.details
    out = ""
    if "histogram" in d:
        png = plots.ratio_histogram(
            d["histogram"]["edges"],
            d["histogram"]["counts"],
            float(d["threshold_ratio"]),
            path=pdir / "memorization_ratios.png",
        )
        out += f"<figure>{_img(png, 'ratio histogram')}<figcaption>Held-out real images sit around 1; copies near 0.</figcaption></figure>"
    pairs = d.get("worst_pairs", [])
    if pairs:
        gi = np.asarray([p["generated"] for p in pairs])
        ti = np.asarray([p["train"] for p in pairs])
        thr = float(d["threshold_ratio"])
        caps = [f"ratio {p['ratio']:.3f}" + ("  NEAR-COPY" if p["ratio"] < thr else "") for p in pairs]
        png = plots.pair_grid(
            run.generated.images[gi], run.train.images[ti], caps, ncol=4, path=pdir / "memorization_pairs.png"
        )
        out += f"<figure>{_img(png, 'worst pairs')}<figcaption>Most suspicious generated samples (left) next to their nearest training image (right).</figcaption></figure>"
    return out


def _duplicate_section(run: CheckRun, pdir: Path) -> str:
    r = run.get("duplicate_fraction")
    if r is None:
        return "<p class=muted>Duplicates were not measured.</p>"
    clusters = r.details.get("clusters", [])
    if not clusters:
        return "<p>No duplicate clusters found.</p>"
    k = int(r.details.get("n_clusters", len(clusters)))
    out = [f"<p>{k} cluster{'s' if k != 1 else ''} of near-identical samples; the largest:</p>"]
    for i, cl in enumerate(clusters):
        members = np.asarray(cl[:10])
        png = plots.image_grid(
            run.generated.images[members], ncol=len(members), scale=2, path=pdir / f"duplicates_{i}.png"
        )
        out.append(
            f"<figure>{_img(png, f'cluster {i}')}<figcaption>{len(cl)} samples: {cl[:10]}</figcaption></figure>"
        )
    return "".join(out)


def _training_section(records: Sequence[Mapping[str, Any]], pdir: Path) -> tuple[str, dict[str, Any]]:
    summary = summarize_health_log(records)
    png = plots.training_curves(records, path=pdir / "training_curves.png")
    alarms = ", ".join(f"{k} x{v}" for k, v in summary["alarms"].items()) or "none"
    osc = ", ".join(f"{k} {_fmt(v)}" for k, v in summary["oscillation"].items()) or "n/a"
    drift = ", ".join(f"{k} {_fmt(v)}/1k steps" for k, v in summary["d_acc_drift"].items()) or "n/a"
    rt = ", ".join(f"{k} {_fmt(v)}" for k, v in summary["r_t"].items()) or "n/a"
    text = (
        f"<p>{summary['steps']} logged steps. Alarms fired: <b>{html.escape(alarms)}</b>. "
        f"Loss oscillation (second half): {osc}. Discriminator accuracy drift: {drift}. r_t: {rt}.</p>"
    )
    return text + f"<figure>{_img(png, 'training curves')}</figure>", summary


def read_training_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl`` (one JSON object per line) or a JSON list."""
    p = Path(path)
    text = p.read_text()
    try:
        if text.lstrip().startswith("["):
            data = json.loads(text)
            if not isinstance(data, list):
                raise ValueError("not a list")
            return [dict(r) for r in data]
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as e:
        raise ValueError(f"training log {p}: not JSON lines nor a JSON list ({e})") from e


def write_outputs(
    run: CheckRun,
    out_dir: str | Path,
    *,
    training_log: Sequence[Mapping[str, Any]] | None = None,
    title: str = "augmentgen check",
    per_class: int = 10,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``metrics.json``, ``report.html`` and ``plots/*.png`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    pdir = out / "plots"
    pdir.mkdir(parents=True, exist_ok=True)
    metrics = run.metrics()
    if extra:
        metrics.update(extra)
    kind, headline, bullets = verdict(run)
    sections = [
        (
            "Metrics",
            _metric_table(run.results) + f"<p class=muted>Feature space: {html.escape(run.space or '-')}. "
            f"{len(run.generated)} generated ({html.escape(run.generated.name)}) vs {len(run.real)} real "
            f"({html.escape(run.real.name)}); memorization against {len(run.train)} training images.</p>",
        ),
        ("Per class", _per_class_section(run, pdir)),
        ("Samples per class", _class_grids(run, per_class, pdir)),
        ("Memorization: nearest training images", _memorization_section(run, pdir)),
        ("Duplicate clusters", _duplicate_section(run, pdir)),
    ]
    if training_log:
        text, summary = _training_section(training_log, pdir)
        metrics["training"] = summary
        sections.append(("Training", text))
    timing = ", ".join(f"{html.escape(k)} {v:.1f}s" for k, v in run.timings.items())
    sections.append(("Timings", f"<p class=muted>{timing}</p>"))
    body = "".join(f"<h2>{html.escape(h)}</h2>{s}" for h, s in sections)
    items = "".join(f"<li>{html.escape(b)}</li>" for b in bullets)
    doc = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><div class=muted>{html.escape(run.generated.name)} vs {html.escape(run.real.name)}</div>"
        f"<div class='verdict {kind}'><b>{html.escape(headline)}</b><ul>{items}</ul></div>{body}</body></html>"
    )
    paths = {"metrics": out / "metrics.json", "report": out / "report.html", "plots": pdir}
    paths["metrics"].write_text(json.dumps(metrics, indent=2, sort_keys=False, default=str) + "\n")
    paths["report"].write_text(doc)
    logger.info("wrote %s and %s", paths["metrics"], paths["report"])
    return paths
