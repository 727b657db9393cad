"""The run's ``report.html``: stages, generators, shards, check verdicts (linked), samples, the evaluation.

Self-contained (the plot and the sample grids are embedded); each generator's full check report
stays in ``checks/{name}/report.html`` and is linked.
"""

from __future__ import annotations

import base64
import html
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from augmentgen.data.sources import ArrayDataset
from augmentgen.recipes import stages as st
from augmentgen.recipes.load import dump_recipe
from augmentgen.recipes.schema import Recipe

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#1d232b;padding:0 16px}
h2{margin-top:30px;border-bottom:1px solid #dde3ea;padding-bottom:4px;font-size:1.2em}
table{border-collapse:collapse;width:100%;font-size:.93em} td,th{padding:5px 9px;border-bottom:1px solid #e6eaef;text-align:left}
th{background:#f5f7fa} .ok{color:#1e7b34;font-weight:600} .bad{color:#b3261e;font-weight:600}
.muted{color:#6b7785;font-size:.9em} pre{background:#f5f7fa;padding:10px;font-size:.8em;overflow-x:auto}
.wide{overflow-x:auto} .samples td{padding:3px 6px} .samples img{display:block}
"""

ARM_LABELS = {
    "real": "real only",
    "real_classical": "real + classical ops",
    "real_classical_synthetic": "real + classical + synthetic",
    "synthetic": "synthetic only (CAS)",
}


def evaluation_title(evaluation: dict[str, Any]) -> str:
    """The evaluation plot's title: real images per class, seeds, and the synthetic arm's gain when measured.

    Example:
        >>> evaluation_title({"n_per_class": 10, "settings": {"seeds": [0, 1]},
        ...                   "gains": {"synthetic_over_classical": 0.0234}})
        '10 real images per class, 2 seed(s); synthetic over classical +2.3 points'
    """
    n = evaluation.get("n_per_class")
    title = f"{'all' if n is None else n} real images per class, {len(evaluation['settings']['seeds'])} seed(s)"
    gain = (evaluation.get("gains") or {}).get("synthetic_over_classical")
    if gain is not None:  # the bars start at 0, so a 2-point difference needs saying
        title += f"; synthetic over classical {100 * gain:+.1f} points"
        paired = (evaluation.get("paired") or {}).get("synthetic_over_classical")
        if paired and paired.get("std") is not None:
            title += f" ± {100 * paired['std']:.1f} paired, {paired['verdict']}"
    return title


def gain_text(name: str, gain: float, paired: dict[str, Any] | None) -> str:
    """One line on a gain: the difference of the means and, when measured, its seed-by-seed form.

    Example:
        >>> gain_text("synthetic_over_classical", -0.0021, {"per_seed": [-0.0011, -0.0023, -0.0028],
        ...     "std": 0.00087, "interval95": [-0.0042, 0.0001], "verdict": "within the seed noise"})
        'synthetic over classical: -0.21 points (per seed -0.11, -0.23, -0.28; paired std 0.09, 95% interval -0.42 to +0.01: within the seed noise)'
    """
    text = f"{name.replace('_', ' ')}: {100 * gain:+.2f} points"
    if paired and paired.get("std") is not None:
        lo, hi = paired["interval95"]
        per_seed = ", ".join(f"{100 * d:+.2f}" for d in paired["per_seed"])
        text += (
            f" (per seed {per_seed}; paired std {100 * paired['std']:.2f}, "
            f"95% interval {100 * lo:+.2f} to {100 * hi:+.2f}: {paired['verdict']})"
        )
    return text


def plot_evaluation(evaluation: dict[str, Any], path: Path) -> bytes:
    """Bar chart of mean accuracy per arm with one-std error bars; PNG bytes, also written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = evaluation["arms"]
    names = list(arms)
    means = [arms[a]["mean"] for a in names]
    stds = [arms[a]["std"] for a in names]
    fig, ax = plt.subplots(figsize=(6.5, 3.2), dpi=100)
    labels = [textwrap.fill(ARM_LABELS.get(a, a), 16) for a in names]  # four long labels side by side
    ax.bar(labels, means, yerr=stds, capsize=4, color="#5b8def")
    for i, m in enumerate(means):
        ax.text(i, m, f"{m:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.set_title(textwrap.fill(evaluation_title(evaluation), 80), fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _stage_table(out: Path) -> str:
    rows = []
    for s in st.STAGES[:-1]:
        m = st.read_marker(out, s)
        state = "<span class=ok>done</span>" if m else "<span class=muted>not run</span>"
        secs = f"{m.get('seconds', 0.0):.1f}" if m else "-"
        rows.append(f"<tr><td>{s}</td><td>{state}</td><td>{secs}</td></tr>")
    return (
        "<table><tr><th>stage</th><th>state</th><th>seconds (last run)</th></tr>" + "".join(rows) + "</table>"
    )


def _generator_table(out: Path, recipe: Recipe) -> str:
    train = (st.read_marker(out, "train") or {}).get("info", {})
    gen = (st.read_marker(out, "generate") or {}).get("info", {})
    ver = (st.read_marker(out, "verify") or {}).get("info", {})
    chk = (st.read_marker(out, "check") or {}).get("info", {}).get("generators", {})
    rows = []
    for g in recipe.generators:
        t = train.get("generators", {}).get(g.name, {})
        trained = (
            "loaded"
            if g.from_pretrained
            else f"{t.get('steps', '-')} steps, {t.get('train_seconds', 0):.0f} s"
        )
        samples = ver.get(g.name, {}).get("samples", gen.get(g.name, {}).get("samples", "-"))
        c = chk.get(g.name)
        if c is None:
            verdict = "-"
        elif c["passed"]:
            verdict = "<span class=ok>gates pass</span>"
        else:
            verdict = "<span class=bad>FAIL: " + html.escape("; ".join(c["failed_gates"])) + "</span>"
        link = f'<a href="checks/{g.name}/report.html">check report</a>' if c is not None else ""
        rows.append(
            f"<tr><td>{html.escape(g.name)} ({html.escape(g.kind)})</td><td>{trained}</td>"
            f"<td>shards/{html.escape(g.name)}/: {samples} samples</td><td>{verdict} {link}</td></tr>"
        )
    head = "<tr><th>generator</th><th>training</th><th>shards (verified)</th><th>checks</th></tr>"
    acc = train.get("classifier_test_accuracy")
    note = f"<p>Reference classifier test accuracy: {acc:.4f} ({train.get('train_images')} real training images).</p>"
    return (note if acc is not None else "") + "<table>" + head + "".join(rows) + "</table>"


# sample grids: at most this many classes (rows), images per cell, and pixels per image side
MAX_CLASSES, REAL_PER_CLASS, GENERATED_PER_CLASS, TILE = 20, 4, 6, 56


def _tiles(images: list[np.ndarray]) -> np.ndarray:
    """HWC uint8 images of one size -> ``[N, t, t', C]`` uint8 scaled so the longer side is about ``TILE``."""
    arr = np.stack(images)
    h, w = arr.shape[1:3]
    f = TILE / max(h, w)
    if f >= 2:  # small images: whole-pixel nearest-neighbour enlargement keeps them crisp
        k = int(f)
        return arr.repeat(k, 1).repeat(k, 2)
    if f < 1:
        size = (max(1, round(w * f)), max(1, round(h * f)))
        arr = np.stack([cv2.resize(a, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1) for a in arr])
    return arr


def _cell(images: list[np.ndarray], alt: str) -> str:
    if not images:
        return "<td class=muted>none</td>"
    from augmentgen.checks.plots import image_grid

    png = image_grid(_tiles(images), ncol=len(images), scale=1, pad=1)
    return f'<td><img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></td>'


def _shard_samples(folder: Path, classes: int) -> dict[int, list[np.ndarray]]:
    """The first ``GENERATED_PER_CLASS`` images of each class in a shard folder, in shard order.

    Only the images kept are decoded, and the search stops after 50 samples per image wanted
    (a class a generator never drew does not make the report read every shard).
    """
    from augmentgen.shards.reader import decode_sample, load

    picks: dict[int, list[np.ndarray]] = {}
    for n, raw in enumerate(load(folder).raw_samples()):
        c = int(raw["cls"]) if "cls" in raw else -1
        got = picks.setdefault(c, [])
        if len(got) < GENERATED_PER_CLASS:
            got.append(decode_sample(raw)["image"])
        full = len(picks) >= classes and all(len(v) >= GENERATED_PER_CLASS for v in picks.values())
        if full or n >= 50 * GENERATED_PER_CLASS * max(1, classes):
            break
    return picks


def _samples_section(out: Path, recipe: Recipe, train: ArrayDataset | None = None) -> str:
    """Per class: real training images (``train``, else the recipe's data loaded here) beside the
    first images of every generator's shards."""
    folders = {g.name: out / "shards" / g.name for g in recipe.generators}
    folders = {n: d for n, d in folders.items() if (d / "manifest.json").is_file()}
    if not folders:
        return "<p class=muted>No shards written.</p>"
    note = ""
    try:
        from augmentgen.eval.train_job import load_data

        if train is None:
            train, _ = load_data(recipe.data)
        names, real = list(train.classes), {c: list(train.images[train.labels == c][:REAL_PER_CLASS]) for c in range(train.num_classes)}
    except Exception as e:  # noqa: BLE001 - the grids still show the generated images
        names, real, note = [], {}, f"<p class=muted>Real images not shown: {html.escape(str(e))}</p>"
    try:
        drawn = {n: _shard_samples(d, max(1, len(names))) for n, d in folders.items()}
    except ValueError as e:  # a shard that does not read back: verify names it; the report says so and goes on
        return note + f"<p class=bad>Samples not shown: {html.escape(str(e))}</p>"
    classes = sorted(set(real) | {c for d in drawn.values() for c in d})
    if len(classes) > MAX_CLASSES:
        note += f"<p class=muted>The first {MAX_CLASSES} of {len(classes)} classes.</p>"
        classes = classes[:MAX_CLASSES]
    head = "<tr><th>class</th>" + ("<th>real (training)</th>" if real else "") + "".join(
        f"<th>{html.escape(n)}</th>" for n in drawn
    ) + "</tr>"
    rows = []
    for c in classes:
        name = names[c] if 0 <= c < len(names) else ("unlabelled" if c < 0 else str(c))
        cells = _cell(real.get(c, []), f"real {name}") if real else ""
        cells += "".join(_cell(d.get(c, []), f"{n} {name}") for n, d in drawn.items())
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    return (
        note + "<div class=wide><table class=samples>" + head + "".join(rows) + "</table></div>"
        "<p class=muted>Real: the first training images of each"
        " class (what the generators learned from); generated: the first of each class in the shards, after the"
        " pipeline's classical ops.</p>"
    )


def _evaluation_section(out: Path) -> str:
    ev = _read(out / "evaluation.json")
    if ev is None:
        return "<p class=muted>Not evaluated.</p>"
    rows = "".join(
        f"<tr><td>{ARM_LABELS.get(a, a)}</td><td>{v['mean']:.4f}</td><td>{v['std']:.4f}</td>"
        f"<td>{', '.join(f'{x:.4f}' for x in v['accuracy'])}</td><td>{v['train_images']}</td></tr>"
        for a, v in ev["arms"].items()
    )
    paired = ev.get("paired") or {}
    gains = "".join(
        f"<li>{html.escape(gain_text(k, v, paired.get(k)))}</li>" for k, v in ev.get("gains", {}).items()
    )
    s = ev["settings"]
    img = ""
    png = out / "evaluation.png"
    if png.is_file():
        img = f'<img alt="evaluation" src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}">'
    return (
        "<table><tr><th>arm</th><th>mean accuracy</th><th>std</th><th>per seed</th><th>train images</th></tr>"
        + rows
        + f"</table><ul>{gains}</ul>{img}<p class=muted>{s['real_images']} real training images, "
        f"{s['test_images']} real test images, seeds {s['seeds']}, {s['classical_copies']} classical copies, "
        f"{s['synthetic_per_class']} synthetic images per class from {', '.join(s['generators']) or '-'}.</p>"
    )


def write_report(out: Path, recipe: Recipe, recipe_sha256: str, train: ArrayDataset | None = None) -> Path:
    """Write ``out/report.html`` from the stage markers and outputs; returns its path."""
    body = [
        f"<h1>augmentgen run: {html.escape(recipe.name)}</h1>",
        f"<p class=muted>recipe sha256 {recipe_sha256}</p>",
        "<h2>Stages</h2>",
        _stage_table(out),
        "<h2>Generators, shards and checks</h2>",
        _generator_table(out, recipe),
        "<h2>What the generators drew</h2>",
        _samples_section(out, recipe, train),
        "<h2>Downstream evaluation</h2>",
        _evaluation_section(out),
        "<h2>Resolved recipe</h2>",
        f"<pre>{html.escape(dump_recipe(recipe))}</pre>",
    ]
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(recipe.name)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
    path = out / "report.html"
    tmp = path.with_name(".report.html.tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path
