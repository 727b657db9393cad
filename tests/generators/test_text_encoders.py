"""Text encoders: MiniLM against its own definition, batching and cache, a tiny CLIP saved and loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from augmentgen.generators.text_encoders import (
    CLIPTextEncoder,
    MiniLMEncoder,
    TextEncoder,
    load_text_encoder,
)

TEXTS = [
    "a photo of a sneaker",
    "a red leather ankle boot on a plain floor",
    "a dress",
    "the same street scene in thick fog at night, wet asphalt reflecting lamps",
    "a photo of a sneaker",  # repeated on purpose
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    torch.set_num_threads(1)
    return MiniLMEncoder(batch_size=2)


def test_minilm_shape_norm_and_protocol(minilm: MiniLMEncoder) -> None:
    e = minilm.encode(TEXTS)
    assert isinstance(minilm, TextEncoder)
    assert minilm.dim == 384 and e.shape == (5, 384) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(e[0], e[4])
    assert minilm.encode([]).shape == (0, 384)


def test_minilm_batch_equals_one_by_one(minilm: MiniLMEncoder) -> None:
    minilm.clear_cache()
    batched = minilm.encode(TEXTS)
    minilm.clear_cache()
    single = torch.cat([minilm.encode([t]) for t in TEXTS])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


def test_minilm_matches_sentence_transformers(minilm: MiniLMEncoder) -> None:
    st = pytest.importorskip("sentence_transformers")
    from augmentgen.generators.text_encoders import minilm_path

    ref = st.SentenceTransformer(str(minilm_path()), device="cpu").encode(TEXTS[:4], convert_to_tensor=True)
    torch.testing.assert_close(minilm.encode(TEXTS[:4]), ref.float().cpu(), atol=1e-5, rtol=1e-4)


def test_minilm_similarity_is_semantic(minilm: MiniLMEncoder) -> None:
    e = minilm.encode(["a running shoe", "a sneaker", "a street in heavy rain"])
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.2


def test_cache_hit_skips_the_model(minilm: MiniLMEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    minilm.encode(["cached text one", "cached text two"])
    calls: list[list[str]] = []
    real = minilm._embed
    monkeypatch.setattr(minilm, "_embed", lambda t: calls.append(t) or real(t))
    minilm.encode(["cached text two", "cached text one", "new text"])
    assert calls == [["new text"]]


def test_bad_input(minilm: MiniLMEncoder) -> None:
    with pytest.raises(TypeError, match="one string"):
        minilm.encode("a shoe")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        minilm.encode(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown text encoder"):
        load_text_encoder("bert")
    with pytest.raises(ValueError, match="batch_size"):
        MiniLMEncoder(batch_size=0)


def save_tiny_clip(folder: Path) -> Path:
    """A 2-layer CLIP text tower and a character-level CLIP tokenizer, saved like a hub checkpoint."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(0)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    cfg = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, projection_dim=8, max_position_embeddings=32,
        bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )  # fmt: skip
    model = CLIPTextModelWithProjection(cfg).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_tiny_clip_round_trip(tmp_path: Path) -> None:
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    folder = save_tiny_clip(tmp_path / "clip")
    enc = load_text_encoder(f"clip:{folder}", shared=False)
    assert isinstance(enc, CLIPTextEncoder) and enc.dim == 8
    texts = ["a cat", "a dog on a sofa", "fog"]
    got = enc.encode(texts)
    # the reference: the same checkpoint through the plain transformers calls
    tok = CLIPTokenizer.from_pretrained(folder)
    model = CLIPTextModelWithProjection.from_pretrained(folder).eval()
    with torch.no_grad():
        ref = torch.cat([model(**tok([t], return_tensors="pt")).text_embeds for t in texts])
    torch.testing.assert_close(got, torch.nn.functional.normalize(ref, dim=-1), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got[0], got[1])


def test_shared_instances(tmp_path: Path) -> None:
    folder = save_tiny_clip(tmp_path / "clip")
    a = load_text_encoder(f"clip:{folder}")
    assert load_text_encoder(f"clip:{folder}") is a
    assert load_text_encoder(f"clip:{folder}", shared=False) is not a
