"""The main job: train-or-load generators, write shards, verify, check, evaluate, report.

Each stage writes its outputs, then a done-marker with its hash (``recipes.stages``); a stage
whose marker matches the recipe is skipped, and the expensive ones resume inside themselves
(generator checkpoints, shards listed in the manifest), so a killed run picks up where it
stopped and writes the same shards.

Layout of ``RUN/``::

    recipe.yaml  recipe.sha256        the resolved recipe and its hash
    classifier/                       reference classifier on the real (sub)set
    generators/{name}/model/          trained generators (+ metrics.jsonl, samples)
    shards/{name}/                    {shards.name}-{name}-{i:06d}.tar + manifest.json
    checks/{name}/                    metrics.json, report.html
    evaluation.json  evaluation.png   the downstream protocol
    report.html                       everything above on one page
    stages/{stage}.json               done-markers
"""

from __future__ import annotations

import json
import logging
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from augmentgen.data.sources import ArrayDataset
from augmentgen.recipes import stages as st
from augmentgen.recipes.load import dump_recipe
from augmentgen.recipes.schema import Recipe

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What ``run_recipe`` did: stages run and skipped, outputs, and whether every gate passed."""

    out: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    gates_passed: bool = True
    report: Path | None = None


class _Ctx:
    """Everything stages share: the recipe, hashes, data and models loaded once."""

    def __init__(self, recipe: Recipe, out: Path, console: Console | None) -> None:
        self.recipe, self.out, self.console = recipe, out, console
        self.sha = recipe.sha256()
        self.hashes = st.stage_hashes(recipe)
        self._data: tuple[ArrayDataset, ArrayDataset] | None = None
        self._clf: Any = None

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)
        logger.info("%s", text)

    def data(self) -> tuple[ArrayDataset, ArrayDataset]:
        if self._data is None:
            from augmentgen.eval.train_job import load_data

            self._data = load_data(self.recipe.data)
        return self._data

    def classifier(self) -> Any:
        if self._clf is None:
            from augmentgen.eval.classifier import ReferenceClassifier

            self._clf = ReferenceClassifier.from_pretrained(self.out / "classifier")
        return self._clf

    def generator_path(self, name: str) -> Path:
        g = next(g for g in self.recipe.generators if g.name == name)
        return Path(g.from_pretrained) if g.from_pretrained else self.out / "generators" / name / "model"

    def load_generator(self, name: str) -> Any:
        import augmentgen.generators  # noqa: F401  (fills the registry)
        from augmentgen.core.registry import GENERATORS

        g = next(g for g in self.recipe.generators if g.name == name)
        kind = "ensemble" if g.ensemble > 1 else g.kind
        return GENERATORS.get(kind).from_pretrained(self.generator_path(name)).eval()

    def progress(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=self.console is None,
        )


# ---- stages ---------------------------------------------------------------------------------------


def _stage_train(ctx: _Ctx) -> dict[str, Any]:
    from augmentgen.eval.classifier import train_classifier
    from augmentgen.eval.forked import fork_workers, run_forked
    from augmentgen.eval.train_job import _classifier_kwargs, train_generator, trains_on_cpu
    from augmentgen.generators.layers import count_parameters

    r = ctx.recipe
    train, test = ctx.data()
    info: dict[str, Any] = {"train_images": len(train), "test_images": len(test), "generators": {}}
    cdir = ctx.out / "classifier"
    if (cdir / "config.json").is_file():
        ctx.say("  reference classifier: loaded")
    else:
        kw = _classifier_kwargs(r.classifier, train)  # the same settings as `augmentgen train`
        ctx.say(f"  reference classifier: {r.classifier.steps} steps on {len(train)} real images")
        run = train_classifier(
            train.to_batch(uint8=True), seed=r.classifier.seed, test=test.to_batch(uint8=True), **kw
        )  # fmt: skip
        meta = {
            "test_accuracy": run.test_accuracy,
            "train_seconds": run.seconds,
            "parameters": count_parameters(run.model),
            "precision": kw["precision"],
            "recipe_sha256": ctx.sha,
        }
        run.model.save_pretrained(cdir, meta=meta)
    meta = json.loads((cdir / "config.json").read_text()).get("meta", {})
    info["classifier_test_accuracy"] = meta.get("test_accuracy")
    plain: list[Any] = []  # trained here from scratch: side by side on the CPU when the cores allow
    for g in r.generators:
        gdir = ctx.out / "generators" / g.name
        if g.from_pretrained:
            ctx.say(f"  {g.name}: loaded from {g.from_pretrained}")
            info["generators"][g.name] = {"from_pretrained": g.from_pretrained}
            continue
        if g.kind == "diffusers":  # not trained here: the folder names the pipeline and its settings
            from augmentgen.generators.diffusers_backend import write_diffusers_folder

            refs = train.to_batch(uint8=True) if g.model.get("mode") == "img2img" else None  # DA-Fusion edits
            where = f"generators.{g.name}.model"
            write_diffusers_folder(gdir / "model", g.model, where=where, references=refs)
            ctx.say(f"  {g.name}: diffusers pipeline {g.model['pipeline']}")
            info["generators"][g.name] = {"pipeline": g.model["pipeline"]}
            continue
        done = gdir / "done.json"
        if done.is_file():
            ctx.say(f"  {g.name}: trained earlier")
            info["generators"][g.name] = json.loads(done.read_text())
            continue
        if g.kind != "t2i":
            plain.append(g)
            info["generators"][g.name] = None  # filled below, in the recipe's order
            continue
        ctx.say(f"  {g.name}: training {g.kind} for {g.train.steps} steps on {len(train)} real images")
        # captions written and embedded once (an LLM in this process); the model's from_config reads the bank
        from augmentgen.generators.t2i_captions import recipe_caption_bank

        tti, prompts = r.text_to_image, ctx.out / "prompts"
        assert tti is not None  # the schema requires it for t2i generators
        bank = recipe_caption_bank(tti, train.classes, r.data.source, prompts, "train")
        model = {"text_encoder": tti.text_encoder, **g.model, "captions": str(bank)}
        _, fig = train_generator(
            g.model_copy(update={"model": model}), train, out_dir=gdir, classify=ctx.classifier().predict_logits,
            progress=ctx.console is not None, resume=True,
        )  # fmt: skip
        if tti.render != "train":  # shards and evaluation arms render these prompts, not the training captions
            from augmentgen.generators.t2i_captions import set_render_prompts

            render = recipe_caption_bank(tti, train.classes, r.data.source, prompts, "render")
            fig.update(set_render_prompts(gdir / "model", render))
        fig["recipe_sha256"] = ctx.sha
        st.write_json(done, fig)
        info["generators"][g.name] = fig
    if not plain:
        return info
    n = fork_workers(None if all(map(trains_on_cpu, plain)) else 1, len(plain))
    classify = ctx.classifier().predict_logits  # loaded before any fork: the children inherit it

    def one(k: int) -> dict[str, Any]:
        g = plain[k]
        if n == 1:
            ctx.say(f"  {g.name}: training {g.kind} for {g.train.steps} steps on {len(train)} real images")
        gdir = ctx.out / "generators" / g.name
        _, fig = train_generator(
            g, train, out_dir=gdir, classify=classify, progress=n == 1 and ctx.console is not None, resume=True
        )  # fmt: skip
        fig["recipe_sha256"] = ctx.sha
        st.write_json(gdir / "done.json", fig)
        return fig

    if n > 1:
        names = ", ".join(f"{g.name} ({g.kind}, {g.train.steps} steps)" for g in plain)
        ctx.say(f"  training {names} side by side on {n} processes, {len(train)} real images each")
    for (k,), fig in run_forked(one, [(k,) for k in range(len(plain))], n, what="the training of generator"):
        if n > 1:
            ctx.say(f"  {plain[k].name}: trained in {fig['train_seconds']:.0f} s")
        info["generators"][plain[k].name] = fig
    return info


class _FilteredSource:
    """A shard source whose batches pass the recipe's filters (dropped rows are counted in the log)."""

    def __init__(self, source: Any, chain: Any, spec: dict[str, Any]) -> None:
        self.source, self.chain, self.spec = source, chain, spec

    def describe(self) -> dict[str, Any]:
        return {**self.source.describe(), "filters": self.spec}

    def batches(self, task: Any) -> Any:
        self.chain.reset()  # stateful filters restart per shard: shard i stays a pure function of i
        for batch in self.source.batches(task):
            yield self.chain(batch)


def _filter_chain(ctx: _Ctx) -> Any:
    from augmentgen.checks.filters import BlankFilter, ConfidenceFilter, FilterChain, FiniteFilter

    f = ctx.recipe.filters
    filters: list[Any] = []
    if f.finite:
        filters.append(FiniteFilter())
    if f.blank_std is not None:
        filters.append(BlankFilter(f.blank_std))
    if f.min_confidence is not None:
        filters.append(ConfidenceFilter(ctx.classifier().predict_logits, f.min_confidence))
    if f.clip is not None:
        from augmentgen.checks.filters_clip import ClipScoreFilter

        c = f.clip
        filters.append(ClipScoreFilter(c.model, c.min_score, class_prompts=c.class_prompts, device=c.device))
    return FilterChain(filters) if filters else None


class _ShardHook:
    def __init__(self, progress: Any, name: str) -> None:
        self.progress, self.name, self.task = progress, name, None

    def start(self, todo: int, done: int) -> None:
        self.task = self.progress.add_task(f"shards {self.name}", total=todo + done, completed=done)

    def shard_done(self, record: Any) -> None:
        self.progress.update(self.task, advance=1)

    def shard_failed(self, index: int, error: str) -> None:
        self.progress.update(self.task, advance=1)


def shard_recipe(recipe: Recipe, gen_name: str, gen_path: Path, num_classes: int) -> Any:
    """The ``GenerateRecipe`` of one generator's shards (named ``{shards.name}-{gen_name}``)."""
    from augmentgen.shards.config import GenerateRecipe, GeneratorSourceConfig

    shards = recipe.shards.model_copy(update={"name": f"{recipe.shards.name}-{gen_name}"})
    source = GeneratorSourceConfig(path=str(gen_path), classes=num_classes)
    return GenerateRecipe(shards=shards, source=source, pipeline=recipe.pipeline, run=recipe.run)


def _stage_generate(ctx: _Ctx) -> dict[str, Any]:
    from augmentgen.shards import build_source, write_shards

    train, _ = ctx.data()
    info: dict[str, Any] = {}
    with ctx.progress() as progress:
        for g in ctx.recipe.generators:
            if not g.shards:
                continue
            grecipe = shard_recipe(ctx.recipe, g.name, ctx.generator_path(g.name), train.num_classes)
            chain = _filter_chain(ctx)
            source = build_source(grecipe)
            if chain is not None:
                source = _FilteredSource(source, chain, ctx.recipe.filters.model_dump(mode="json"))
            # one process: the filters live in this process's source (encoding still uses threads)
            run = grecipe.run.model_copy(update={"workers": 1, "distributor": "local"})
            res = write_shards(
                grecipe, ctx.out / "shards" / g.name, resume=True, run=run,
                hook=_ShardHook(progress, g.name), source=source,
            )  # fmt: skip
            if res.failed:
                raise ValueError(
                    f"shards of {g.name}: {len(res.failed)} failed: {res.failed}; run again to retry"
                )
            info[g.name] = {"written": len(res.written), "skipped": len(res.skipped), "samples": res.samples}
    return info


def _stage_verify(ctx: _Ctx) -> dict[str, Any]:
    from augmentgen.shards import verify_shards

    info: dict[str, Any] = {}
    for g in ctx.recipe.generators:
        if not g.shards:
            continue
        rep = verify_shards(ctx.out / "shards" / g.name, decode=True)
        if not rep.ok or not rep.complete:
            faults = "; ".join(str(f) for f in rep.faults[:5])
            raise ValueError(f"shards of {g.name} do not verify (complete={rep.complete}): {faults}")
        info[g.name] = {"shards": rep.shards, "samples": rep.samples, "ok": True}
        ctx.say(f"  {g.name}: {rep.shards} shard(s), {rep.samples} samples verified")
    return info


def _stage_check(ctx: _Ctx) -> dict[str, Any]:
    from augmentgen.checks.job import run_check_job, subsample
    from augmentgen.checks.report import read_training_log

    spec = ctx.recipe.checks
    if not spec.enabled:
        return {"enabled": False, "passed": True}
    train, test = ctx.data()
    real = subsample(test, spec.n_real, spec.seed)
    info: dict[str, Any] = {"passed": True, "generators": {}}
    for g in ctx.recipe.generators:
        if not g.shards:
            continue
        log_path = ctx.out / "generators" / g.name / "metrics.jsonl"
        job = run_check_job(
            [ctx.out / "shards" / g.name], real, config=spec.check_config(), out_dir=ctx.out / "checks" / g.name,
            train=train, classifier=ctx.classifier(), n=spec.n_generated, cache_dir=None,
            training_log=read_training_log(log_path) if log_path.is_file() else None, log=ctx.say,
        )  # fmt: skip
        metrics_path = ctx.out / "checks" / g.name / "metrics.json"
        if metrics_path.is_file():  # stamp the check's metrics with the recipe that made them
            st.write_json(metrics_path, {**json.loads(metrics_path.read_text()), "recipe_sha256": ctx.sha})
        failed = [", ".join(r.details.get("gates", [])) for r in job.run.failed] + list(job.run.unknown_gates)
        info["generators"][g.name] = {
            "passed": job.run.passed, "failed_gates": failed,
            "metrics": {str(r.details.get("key", r.name)): r.value for r in job.run.results},
        }  # fmt: skip
        info["passed"] = info["passed"] and job.run.passed
        ctx.say(f"  {g.name}: gates {'passed' if job.run.passed else 'FAILED: ' + '; '.join(failed)}")
    return info


def _stage_evaluate(ctx: _Ctx) -> dict[str, Any]:
    from augmentgen.eval.protocol import evaluate_arms
    from augmentgen.recipes.report import gain_text, plot_evaluation

    r, ev = ctx.recipe, ctx.recipe.evaluate
    if not ev.enabled:
        return {"enabled": False}
    train, test = ctx.data()
    test_b = test.to_batch(uint8=True)
    if ev.test_limit is not None and ev.test_limit < len(test):
        from augmentgen.checks.job import subsample

        test_b = subsample(test, ev.test_limit, r.seed).to_batch(uint8=True)
    from augmentgen.pipeline import Pipeline

    pipeline = None if r.pipeline is None else Pipeline.from_dict(r.pipeline, where="pipeline")
    syn_pipeline = (
        None
        if ev.synthetic_pipeline is None
        else Pipeline.from_dict(ev.synthetic_pipeline, where="evaluate.synthetic_pipeline")
    )
    needs_gen = {"real_classical_synthetic", "synthetic"} & set(ev.arms)
    gens = {g.name: ctx.load_generator(g.name) for g in r.generators} if needs_gen else {}
    loaded = [g.name for g in r.generators if g.from_pretrained]
    if needs_gen and loaded:
        # the protocol wants generators trained on the same real subset only; loaded ones may have seen more
        ctx.say(f"  note: {loaded} were loaded, not trained on this subset: the synthetic arms may peek")
    from augmentgen.eval.train_job import _classifier_kwargs

    # every arm trains the reference classifier of the recipe; only steps and the built-in shifts are the protocol's
    kw = {
        **_classifier_kwargs(r.classifier, train),
        "steps": ev.steps or r.classifier.steps,
        "augment": ev.shift_augment,
    }
    total = len(ev.arms) * len(ev.seeds)
    with ctx.progress() as progress:
        task = progress.add_task("evaluate (arm x seed)", total=total)
        result = evaluate_arms(
            train.to_batch(uint8=True), test_b, num_classes=train.num_classes, pipeline=pipeline, generators=gens,
            arms=ev.arms, seeds=ev.seeds, classical_copies=ev.classical_copies,
            synthetic_per_class=ev.synthetic_per_class, synthetic_schedule=ev.synthetic_schedule,
            synthetic_share=ev.synthetic_share,
            temperatures={g.name: g.sample_temperature for g in r.generators}, classifier_kwargs=kw,
            on_step=lambda arm, seed: progress.update(task, advance=1),
            synthetic_oversample=ev.synthetic_oversample,
            confidence=ctx.classifier().predict_logits if ev.synthetic_oversample > 1 else None,
            label_mix=ev.label_mix.model_dump() if ev.label_mix else None,
            synthetic_pipeline=syn_pipeline,
        )  # fmt: skip
    body = {
        **result.to_dict(),
        "recipe": r.resolved(),
        "recipe_sha256": ctx.sha,
        "n_per_class": r.data.n_per_class,
        "pretrained_generators": loaded,
    }
    st.write_json(ctx.out / "evaluation.json", body)
    plot_evaluation(body, ctx.out / "evaluation.png")
    for arm, a in result.arms.items():
        ctx.say(
            f"  {arm}: {a.mean:.4f} +- {a.std:.4f} ({len(a.seeds)} seed(s), {a.train_images} train images)"
        )
    for name, gain in body["gains"].items():
        ctx.say(f"  {gain_text(name, gain, body['paired'].get(name))}")
    return {"arms": {k: {"mean": v.mean, "std": v.std} for k, v in result.arms.items()}}


def _stage_report(ctx: _Ctx) -> dict[str, Any]:
    from augmentgen.recipes.report import write_report

    # the real images the run has loaded already; a report of finished stages loads its own
    path = write_report(ctx.out, ctx.recipe, ctx.sha, train=None if ctx._data is None else ctx._data[0])
    return {"report": str(path)}


_RUNNERS: dict[str, Callable[[_Ctx], dict[str, Any]]] = {
    "train": _stage_train,
    "generate": _stage_generate,
    "verify": _stage_verify,
    "check": _stage_check,
    "evaluate": _stage_evaluate,
    "report": _stage_report,
}


def _cpu_seconds() -> float:
    """CPU seconds of this process and of the children it has reaped (the forked trainers of a stage).

    Example:
        >>> _cpu_seconds() > 0
        True
    """
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_recipe(
    recipe: Recipe,
    out: str | Path,
    *,
    stages: Sequence[str] = st.STAGES,
    console: Console | None = None,
) -> RunResult:
    """Run ``stages`` of ``recipe`` into ``out``, skipping those already done for the same recipe hash.

    Args:
        recipe: a validated recipe (``load_recipe``).
        out: the run folder; created if missing.
        stages: which stages, in ``STAGES`` order (``augmentgen evaluate`` runs train + evaluate + report).
        console: rich console for stage lines and progress bars; None logs only.

    Example:
        >>> run_recipe(load_recipe("recipes/digits-tiny.yaml"), "runs/tiny").report  # doctest: +SKIP
        PosixPath('runs/tiny/report.html')
    """
    bad = sorted(set(stages) - set(st.STAGES))
    if bad:
        raise ValueError(f"run_recipe: unknown stage(s) {bad}; known: {list(st.STAGES)}")
    out = Path(out)
    ctx = _Ctx(recipe, out, console)
    for s in st.STAGES:
        st.check_not_stale(out, s, ctx.hashes[s])
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(f"# recipe sha256: {ctx.sha}\n" + dump_recipe(recipe))
    (out / "recipe.sha256").write_text(ctx.sha + "\n")
    if recipe.num_threads:
        torch.set_num_threads(recipe.num_threads)
    result = RunResult(out=out)
    todo = [s for s in st.STAGES if s in stages]
    for k, s in enumerate(todo, 1):
        h = ctx.hashes[s]
        if st.is_done(out, s, h) and s != "report":
            ctx.say(f"[{k}/{len(todo)}] {s}: done earlier for this recipe, skipped")
            result.skipped.append(s)
            info = st.read_marker(out, s) or {}
        else:
            ctx.say(f"[bold][{k}/{len(todo)}] {s}[/bold]")
            t0, c0 = time.perf_counter(), _cpu_seconds()
            info = _RUNNERS[s](ctx)
            result.seconds[s] = time.perf_counter() - t0
            cpu = _cpu_seconds() - c0
            st.write_marker(out, s, h, ctx.sha, seconds=result.seconds[s], cpu_seconds=cpu, info=info)
            ctx.say(f"  {s} done in {result.seconds[s]:.1f} s")
            result.ran.append(s)
            info = {"info": info}
        if s == "check":
            result.gates_passed = bool(info.get("info", {}).get("passed", True))
    if "report" in todo:
        result.report = out / "report.html"
    return result
