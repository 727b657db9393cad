"""Prompt filters on planted good and bad samples: classifier confidence and CLIP score, counts per class, scores in meta."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

pytest.importorskip("transformers")

from tiny_hf import save_tiny_clip  # noqa: E402

from augmentgen.checks.filters import ConfidenceFilter, FilterChain, FiniteFilter, ScoringFilter  # noqa: E402
from augmentgen.checks.filters_clip import ClipScoreFilter  # noqa: E402
from augmentgen.core.batch import Batch  # noqa: E402

RED, BLUE = "a red thing", "a blue thing"


def _colour(rgb: tuple[float, float, float], n: int, seed: int, size: int = 16) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor(rgb)[None, :, None, None].expand(n, 3, size, size)
    return (base + 0.1 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLIP from config, taught in a few contrastive steps that red images go with RED and blue with BLUE."""
    torch.set_num_threads(1)
    d = save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")
    f = ClipScoreFilter(d, 0.0)
    model = f.model.train()
    tok = f.processor.tokenizer([RED, BLUE], padding=True, return_tensors="pt")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(150):  # ~1 s of CPU; 60 steps separate the colours too weakly for a 50 threshold
        imgs = torch.cat([_colour((0.9, 0.1, 0.1), 1, step), _colour((0.1, 0.1, 0.9), 1, 1000 + step)])
        out = model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                    pixel_values=f.pixel_values(imgs), return_loss=True)  # fmt: skip
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval().save_pretrained(str(d))
    return d


@pytest.fixture(scope="module")
def clip_filter(clip_dir: Path) -> ClipScoreFilter:
    return ClipScoreFilter(clip_dir, 50.0)  # loaded from the folder, as users load a hub id


def _planted() -> Batch:
    """Rows 0-3 red images, 4-7 blue; every prompt says red: rows 0-3 are good, 4-7 bad."""
    img = torch.cat([_colour((0.9, 0.1, 0.1), 4, 1), _colour((0.1, 0.1, 0.9), 4, 2)])
    return Batch(image=img, label=torch.tensor([0] * 8), meta={"prompt": [RED] * 8})


def test_clip_score_separates_planted_samples(clip_filter: ClipScoreFilter) -> None:
    b = _planted()
    s = clip_filter.score(b)
    assert s.shape == (8,) and float(s.min()) >= 0 and float(s.max()) <= 100
    assert float(s[:4].min()) > float(s[4:].max()) + 20  # good pairs score far above bad ones
    assert clip_filter.keep(b).tolist() == [True] * 4 + [False] * 4
    assert isinstance(clip_filter, ScoringFilter)


def test_clip_score_is_cosine_times_100(clip_filter: ClipScoreFilter) -> None:
    b = _planted()
    m, p = clip_filter.model, clip_filter.processor
    with torch.no_grad():
        tok = p.tokenizer([RED], return_tensors="pt")
        t = m.get_text_features(**tok).pooler_output
        i = m.get_image_features(pixel_values=clip_filter.pixel_values(b.image[:2])).pooler_output
    ref = 100 * torch.nn.functional.cosine_similarity(i, t).clamp_min(0)
    torch.testing.assert_close(clip_filter.score(b.index(torch.tensor([0, 1]))), ref, atol=1e-4, rtol=0)


def test_pixel_values_match_the_hf_processor(clip_filter: ClipScoreFilter) -> None:
    img = (_colour((0.5, 0.3, 0.7), 2, 3) * 255).round().to(torch.uint8)
    ref = clip_filter.processor.image_processor(list(img), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(clip_filter.pixel_values(img), ref, atol=1e-3, rtol=0)


def test_clip_prompts_from_class_prompts_and_errors(clip_dir: Path) -> None:
    f = ClipScoreFilter(clip_dir, 50.0, class_prompts={0: RED, 1: BLUE})
    b = _planted()
    unprompted = Batch(image=b.image, label=torch.tensor([0] * 4 + [1] * 4))
    assert f.keep(unprompted).all()  # each colour against its own class prompt
    with pytest.raises(ValueError, match="no class_prompts for classes \\[2\\]"):
        f.keep(Batch(image=b.image[:1], label=torch.tensor([2])))
    with pytest.raises(ValueError, match="meta\\['prompt'\\]"):
        ClipScoreFilter(clip_dir, 50.0).keep(Batch(image=b.image))
    with pytest.raises(ValueError, match="CLIPScore in \\[0, 100\\]"):
        ClipScoreFilter(clip_dir, 150.0)
    with pytest.raises(ValueError, match="cannot load CLIP model"):
        ClipScoreFilter(clip_dir / "missing", 10.0)


def _mean_red_classifier(x: Tensor) -> Tensor:
    """Class 0 = red, class 1 = blue, by mean channel difference (a planted reference classifier)."""
    d = 20 * (x[:, 0].mean((1, 2)) - x[:, 2].mean((1, 2)))
    return torch.stack([d, -d], 1)


def test_confidence_scores_and_planted_drops() -> None:
    b = _planted().replace(label=torch.tensor([0, 0, 1, 1, 1, 1, 0, 0]))  # rows 2, 3, 6, 7 mislabelled
    f = ConfidenceFilter(_mean_red_classifier, 0.9)
    s = f.score(b)
    assert s.shape == (8,) and isinstance(f, ScoringFilter)
    assert f.keep(b).tolist() == [True, True, False, False, True, True, False, False]
    with pytest.raises(ValueError, match="classifier has 2 classes"):
        f.score(b.replace(label=torch.tensor([5] * 8)))


def test_chain_counts_per_class_and_puts_scores_into_meta(clip_filter: ClipScoreFilter) -> None:
    b = _planted().replace(label=torch.tensor([0, 0, 0, 1, 1, 1, 1, 1]))
    b = b.replace(meta={"prompt": [RED, RED, RED, BLUE, RED, RED, BLUE, BLUE], "sample_seed": list(range(8))})
    # row 3 (red image, blue label): low confidence; rows 4, 5 (blue image and label, red prompt): low CLIP score
    chain = FilterChain([FiniteFilter(), ConfidenceFilter(_mean_red_classifier, 0.9), clip_filter])
    out = chain(b)
    assert out.meta["sample_seed"] == [0, 1, 2, 6, 7]
    assert chain.counts == {"seen": 8, "kept": 5, "nonfinite": 0, "low_confidence": 1, "low_clip_score": 2}
    assert chain.class_counts == {
        0: {"seen": 3, "kept": 3},
        1: {"seen": 5, "kept": 2, "low_confidence": 1, "low_clip_score": 2},
    }
    assert out.meta["filter_rejected"] == {
        "low_confidence": 1, "low_confidence:1": 1, "low_clip_score": 2, "low_clip_score:1": 2,
    }  # fmt: skip
    assert len(out.meta["clip_score"]) == 5 and all(v >= 50 for v in out.meta["clip_score"])
    assert all(v >= 0.9 for v in out.meta["confidence"])
    chain.reset()
    assert chain.class_counts == {} and chain.counts["kept"] == 0
