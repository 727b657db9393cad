"""TemplatePrompts: deterministic, prefix-stable, on its vocabulary; class vocabularies validated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augmentgen.generators.llm_sampling import SMOLLM2, SamplingConfig, resolve_model
from augmentgen.generators.prompts import FASHION_MNIST_VOCAB, ClassVocab, TemplatePrompts
from augmentgen.generators.prompts_cache import Prompt, PromptCache, PromptRun, prompt_id, request_key
from augmentgen.generators.prompts_clean import (
    DROP_REASONS,
    PromptFilter,
    clean_line,
    length_reason,
    normalize,
    parse_lines,
)
from augmentgen.generators.prompts_llm import LLMPrompts

TP = TemplatePrompts.fashion_mnist()


def test_fashion_mnist_vocab_names() -> None:
    assert TP.class_names == [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]  # fmt: skip
    assert all(v.description and v.synonyms and v.attributes and v.contexts for v in FASHION_MNIST_VOCAB)


@settings(max_examples=40, deadline=None)
@given(label=st.integers(0, 9), n=st.integers(0, 40), k=st.integers(0, 40), seed=st.integers(0, 2**40))
def test_deterministic_and_prefix_stable(label: int, n: int, k: int, seed: int) -> None:
    a = TP.prompts(label, n, seed=seed)
    assert a == TP.prompts(TP.class_names[label], n, seed=seed)
    assert len(a) == n and all(isinstance(p, str) and p for p in a)
    b = TP.prompts(label, k, seed=seed)
    m = min(n, k)
    assert a[:m] == b[:m]


@settings(max_examples=40, deadline=None)
@given(label=st.integers(0, 9), seed=st.integers(0, 2**31))
def test_prompts_use_the_class_nouns_and_are_clean(label: int, seed: int) -> None:
    v = FASHION_MNIST_VOCAB[label]
    for p in TP.prompts(label, 12, seed=seed):
        assert any(noun in p for noun in v.nouns), p
        assert p == p.strip() and "  " not in p and " ," not in p and not p.endswith(",")
        assert len(p.split()) <= 16


def test_no_repeats_while_the_grammar_has_room() -> None:
    for label in range(10):
        ps = TP.prompts(label, 60, seed=3)
        assert len(set(ps)) == 60


def test_seeds_and_classes_differ() -> None:
    assert TP.prompts(0, 10, seed=0) != TP.prompts(0, 10, seed=1)
    assert set(TP.prompts(7, 10, seed=0)).isdisjoint(TP.prompts(9, 10, seed=0))


def test_articles() -> None:
    sneakers = " | ".join(TP.prompts("Sneaker", 200, seed=0))
    assert "a athletic" not in sneakers and "an athletic shoe" in sneakers
    trousers = TP.prompts("Trouser", 50, seed=0)
    assert all("a pair of" in p for p in trousers)
    fog = TemplatePrompts([ClassVocab("fog", "a street in fog", article="")]).prompts("fog", 5, seed=0)
    assert all("a fog" not in p for p in fog) and all("fog" in p for p in fog)


def test_generic_names_and_captions() -> None:
    tp = TemplatePrompts(["daylight", "dusk", "night"])
    assert tp.describe("dusk") == "dusk" and tp.index("NIGHT") == 2
    caps = TP.captions([7, 7, 0], seed=5)
    assert caps == TP.captions([7, 7, 0], seed=5)
    assert TP.captions([7, 7, 0, 9], seed=5)[:3] == caps  # row i depends on (seed, i) only
    assert any(n in caps[2] for n in FASHION_MNIST_VOCAB[0].nouns)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown class 'Hat'"):
        TP.prompts("Hat", 3)
    with pytest.raises(ValueError, match="out of range"):
        TP.prompts(10, 3)
    with pytest.raises(ValueError, match="non-negative"):
        TP.prompts(0, -1)
    with pytest.raises(TypeError, match="seed"):
        TP.prompts(0, 2, seed="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeated"):
        TemplatePrompts(["a", "a"])
    with pytest.raises(ValueError, match="no \\{noun\\} slot"):
        TemplatePrompts(["a"], templates=("a photo",))
    with pytest.raises(ValueError, match="synonyms"):
        ClassVocab("x", synonyms="shoe")  # type: ignore[arg-type]


# ---- parsing, cleaning, dedupe on fixed LLM outputs (no model) ---------------------------

SMOL_REPLY = """Sure! Here are five captions for your photo:

1. A black leather ankle boot on a white floor.
2) "A suede chelsea boot with a low block heel"
- **A brown lace-up boot, seen from the side.**
* (A pointed ankle boot in grey)
Caption 5: A zip-up bootie. A shiny patent boot on a shelf.
3. a black leather ankle boot on a white floor!
I hope these help! Let me know if you need more.
"""


def test_parse_lines_on_a_fixed_reply() -> None:
    assert parse_lines(SMOL_REPLY) == [
        "A black leather ankle boot on a white floor",
        "A suede chelsea boot with a low block heel",
        "A brown lace-up boot, seen from the side",
        "A pointed ankle boot in grey",
        "A zip-up bootie",
        "A shiny patent boot on a shelf",
        "a black leather ankle boot on a white floor",
    ]
    assert (
        parse_lines(SMOL_REPLY, split_sentences=False)[4] == "A zip-up bootie. A shiny patent boot on a shelf"
    )


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  12. 'A red bag.'  ", "A red bag"),
        ("• “A denim jacket”", "A denim jacket"),
        ("Prompt #3: a striped tee;", "a striped tee"),
        ("b) A wool coat", "A wool coat"),
        ("<|im_end|>A canvas tote\x07", "A canvas tote"),
        ("A 3-piece suit", "A 3-piece suit"),  # a leading number that is not numbering stays
        ("2020 was the year of the sneaker", "2020 was the year of the sneaker"),
    ],
)
def test_clean_line(raw: str, clean: str) -> None:
    assert clean_line(raw) == clean


def test_parse_drops_lines_without_letters_and_headers() -> None:
    assert parse_lines("Captions:\n\n---\n1.\n\ufffd\ufffd 42\nA red coat") == ["A red coat"]
    with pytest.raises(TypeError, match="raw must be a str"):
        parse_lines(None)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_parse_lines_properties(raw: str) -> None:
    for line in parse_lines(raw):
        assert line == line.strip() and "\n" not in line and "  " not in line
        assert any(c.isalpha() for c in line)
        assert clean_line(line) == line  # cleaning is idempotent


def test_normalize_and_length() -> None:
    assert normalize("A Red,  red BAG!") == normalize("a red red bag")
    assert length_reason("a bag", min_words=3, max_words=5) == "too_short"
    assert length_reason("a b c d e f", min_words=1, max_words=5) == "too_long"
    assert length_reason("the fabric is", min_words=1, max_words=5) == "incomplete"
    assert length_reason("a red bag", min_words=3, max_words=5) is None


def _unit(rows: list[list[float]]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_filter_counts_every_reason_in_order() -> None:
    ref = _unit([[1, 0, 0], [0, 1, 0]])  # class 0 and class 1 descriptions
    table = {
        "a red leather bag": [1, 0, 0],
        "a leather red bag, small": [0.99, 0.14, 0],  # near duplicate of the first
        "a tote in the rain": [0.6, 0, 0.8],  # on topic (0.6)
        "something about cars": [0.1, 0, 1],  # off topic
        "more like the other class": [0.5, 0.8, 0.2],  # closer to class 1
    }
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> torch.Tensor:
        calls.append(texts)
        return _unit([table[t] for t in texts])

    f = PromptFilter(ref, 0, min_words=2, max_words=6, dedupe_threshold=0.95, on_topic_threshold=0.3)
    kept = f.add(
        ["a red leather bag", "A red leather bag!", "bag", "a leather red bag, small", "the bag is"],
        encode,
    )
    more = ["a tote in the rain", "something about cars", "more like the other class", "a tote that was cut"]
    kept += f.add(more, encode, cut=["a tote that was cut"])
    assert [t for t, _ in kept] == ["a red leather bag", "a tote in the rain"]
    assert kept[1][1] == pytest.approx(0.6, abs=1e-5)
    d = f.stats.as_dict()
    assert d["candidates"] == 9 and d["kept"] == 2
    assert d["dropped"] == {
        "incomplete": 2, "too_short": 1, "too_long": 0, "duplicate": 1,
        "off_topic": 1, "other_class": 1, "near_duplicate": 1,
    }  # fmt: skip
    assert sum(d["dropped"].values()) + d["kept"] == d["candidates"]
    assert d["dropped_examples"]["near_duplicate"] == ["a leather red bag, small"]
    assert set(d["dropped"]) == set(DROP_REASONS)
    # only survivors of the cheap checks are embedded, in one call per add
    assert calls[0] == ["a red leather bag", "a leather red bag, small"]


def test_filter_thresholds_off_and_bad_settings() -> None:
    ref = _unit([[1, 0], [0, 1]])
    f = PromptFilter(ref, 1, min_words=1, dedupe_threshold=None, on_topic_threshold=None, nearest_class=False)
    got = f.add(["x y", "z w"], lambda t: _unit([[1, 0]] * len(t)))
    assert [t for t, _ in got] == ["x y", "z w"]  # no topic, no near-dup checks
    with pytest.raises(ValueError, match="label"):
        PromptFilter(ref, 2)
    with pytest.raises(ValueError, match="on_topic_threshold"):
        PromptFilter(ref, 0, on_topic_threshold=2.0)
    with pytest.raises(ValueError, match="min_words"):
        PromptFilter(ref, 0, min_words=5, max_words=2)
    with pytest.raises(ValueError, match="encode gave shape"):
        PromptFilter(ref, 0).add(["a red bag"], lambda t: torch.ones(1, 3))


def test_filter_bank_vote_decides_the_nearest_class() -> None:
    # descriptions say class 0 for every line; the bank's 3-NN vote decides instead
    ref = _unit([[1, 0, 0], [0.9, 0.1, 0]])
    bank = _unit([[0, 1, 0], [0, 0.9, 0.1], [0, 0.8, 0.2], [0, 0, 1], [0.1, 0, 1], [0.2, 0, 1]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    table = {
        "reads as its own class": [0.5, 1, 0],  # 3 of 3 neighbours are class 0
        "reads as the other class": [0.5, 0, 1],  # 3 of 3 are class 1
        "a tie is not a plurality": [0, 0.9, 1],  # 2 vs 2 among 4 neighbours
    }

    def encode(texts: list[str]) -> torch.Tensor:
        return _unit([table[t] for t in texts])

    f = PromptFilter(ref, 0, min_words=1, dedupe_threshold=None, on_topic_threshold=None, bank=bank,
                     bank_labels=labels, knn=3)  # fmt: skip
    assert [t for t, _ in f.add(list(table)[:2], encode)] == ["reads as its own class"]
    g = PromptFilter(ref, 0, min_words=1, dedupe_threshold=None, on_topic_threshold=None, bank=bank,
                     bank_labels=labels, knn=4)  # fmt: skip
    assert g.add(["a tie is not a plurality"], encode) == [] and g.stats.dropped["other_class"] == 1
    # the same line written for class 1 passes the vote there, though its description test says class 0
    h = PromptFilter(ref, 1, min_words=1, dedupe_threshold=None, on_topic_threshold=None, bank=bank,
                     bank_labels=labels, knn=3)  # fmt: skip
    assert [t for t, _ in h.add(["reads as the other class"], encode)] == ["reads as the other class"]
    assert PromptFilter(ref, 1, min_words=1, on_topic_threshold=None).add(["reads as the other class"], encode) == []
    # min_vote: "reads as its own class" holds 3 of its 5 nearest votes (0.6): kept at 0.6, dropped at 0.7
    for share, kept in ((0.6, 1), (0.7, 0)):
        v = PromptFilter(ref, 0, min_words=1, dedupe_threshold=None, on_topic_threshold=None, bank=bank,
                         bank_labels=labels, knn=5, min_vote=share)  # fmt: skip
        assert len(v.add(["reads as its own class"], encode)) == kept
    for kw, match in (
        ({"bank": bank, "bank_labels": labels, "knn": 3, "min_vote": 1.5}, "min_vote"),
        ({"bank": bank}, "go together"),
        ({"bank": bank[:, :2], "bank_labels": labels}, r"bank must be \[M, 3\]"),
        ({"bank": bank, "bank_labels": labels[:5]}, r"bank_labels must be \[6\]"),
        ({"bank": bank, "bank_labels": labels, "knn": 7}, r"knn must be in \[1, 6\]"),
        ({"bank": bank, "bank_labels": labels + 1, "knn": 3}, "bank_labels must be in"),
    ):
        with pytest.raises(ValueError, match=match):
            PromptFilter(ref, 0, **kw)  # type: ignore[arg-type]


# ---- the JSONL cache ---------------------------------------------------------------------
def _run(key: str, texts: list[str], **record: object) -> PromptRun:
    ps = [Prompt(prompt_id(key, t), t, "Bag", 8, i, 0.5) for i, t in enumerate(texts)]
    return PromptRun(key, ps, {"n": len(texts), **record})


def test_cache_round_trip_hit_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "p.jsonl"
    c = PromptCache(path)
    assert c.get("k1", 1) is None
    c.put(_run("k1", ["a red bag", "a tote"]))
    c.put(_run("k2", ["a purse"], exhausted=True))
    fresh = PromptCache(path)  # read back from disk
    hit = fresh.get("k1", 2)
    assert hit is not None and hit.texts == ["a red bag", "a tote"]
    assert fresh.get("k1", 1).texts == ["a red bag"]  # type: ignore[union-attr]
    assert fresh.get("k1", 3) is None  # asks for more than the cache holds
    assert fresh.get("k2", 1) is not None and fresh.get("k2", 5) is None  # exhausted at n=1 only
    p = hit.prompts[1]
    assert p.id == prompt_id("k1", "a tote") and fresh.find(p.id) == p
    assert prompt_id("k1", "a tote") != prompt_id("k2", "a tote") and len(p.id) == len("k1-") + 8
    # a later run of the same key wins
    fresh.put(_run("k1", ["x y z", "u v w", "r s t"]))
    assert PromptCache(path).get("k1", 3).texts == ["x y z", "u v w", "r s t"]  # type: ignore[union-attr]
    assert [r.key for r in PromptCache(path).runs()] == ["k1", "k2"]
    assert [p.text for p in PromptCache(path).by_class()["Bag"]] == ["x y z", "u v w", "r s t", "a purse"]
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["kind"] for x in lines] == [
        "run",
        "prompt",
        "prompt",
        "run",
        "prompt",
        "run",
        "prompt",
        "prompt",
        "prompt",
    ]


def test_cache_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"kind": "run", "key": "a"}\nnot json\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2: not a cache record"):
        PromptCache(path).get("a", 1)
    path.write_text(
        '{"kind": "prompt", "key": "a", "id": "a-1", "text": "t", "class": "c", "label": 0, "index": 0}\n'
    )
    with pytest.raises(ValueError, match="prompt before its run record"):
        PromptCache(path).get("a", 1)


def test_request_key() -> None:
    assert request_key(model="m", seed=0) == request_key(seed=0, model="m")
    assert request_key(model="m", seed=0) != request_key(model="m", seed=1)


# ---- LLMPrompts with a tiny causal LM built from config ----------------------------------
@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with a byte-level tokenizer and a ChatML template, saved like a hub model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_lm")
    vocab = {"<|im_start|>": 0, "<|im_end|>": 1}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", bos_token="<|im_start|>")
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=0, eos_token_id=1,
    )  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def _tiny(folder: Path, cache: Path | None = None, **kw: object) -> LLMPrompts:
    args: dict[str, object] = {
        "model": folder, "on_topic_threshold": None, "nearest_class": False, "min_words": 1,
        "sampling": SamplingConfig(batch_size=4, max_new_tokens=16, temperature=1.5), "cache": cache,
        "instruction": "Describe the same street scene in {name}: {description}.",
    }  # fmt: skip
    args.update(kw)
    classes = [ClassVocab("fog", "a street in thick fog", article=""), ClassVocab("rain", "a street in rain")]
    return LLMPrompts(classes, **args)  # type: ignore[arg-type]


def test_llm_prompts_seeded_prefix_stable_and_cached(tiny_lm: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cache = tmp_path / "p.jsonl"
    llm = _tiny(tiny_lm, cache)
    a = llm.generate("fog", 4, seed=0)
    assert len(a.texts) == 4 and len(set(a.texts)) == 4
    assert a.record["kept"] == 4 and a.record["candidates"] == 4 + sum(a.record["dropped"].values())
    assert a.record["replies"] % 4 == 0 and a.record["cpu_s"] >= 0
    # same request from a fresh object: answered by the cache, the model is never loaded
    again = _tiny(tiny_lm, cache)
    b = again.generate("fog", 3, seed=0)
    assert (
        again._lm is None
        and b.texts == a.texts[:3]
        and [p.id for p in b.prompts] == [p.id for p in a.prompts[:3]]
    )
    # same request without a cache: the same prompts again (seeded, no global RNG)
    torch.manual_seed(123)
    assert _tiny(tiny_lm).generate("fog", 4, seed=0).texts == a.texts
    more = _tiny(tiny_lm).generate("fog", 6, seed=0).texts
    assert more[:4] == a.texts  # prefix-stable in n
    assert llm.generate("fog", 4, seed=1).texts != a.texts
    assert (
        llm.key("fog", 0)
        != llm.key("rain", 0)
        != _tiny(tiny_lm, sampling=SamplingConfig(temperature=1.0)).key("rain", 0)
    )


class _HashEncoder:
    """A deterministic stand-in text encoder: a unit vector seeded by each text's bytes."""

    name = "hash"

    def encode(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for t in texts:
            g = torch.Generator().manual_seed(int.from_bytes(t.encode()[:7].ljust(7, b"_"), "little") + len(t))
            rows.append(torch.randn(8, generator=g))
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def test_llm_prompts_topic_bank_vote(tiny_lm: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    bank = [["thick grey fog", "fog on the road", "misty street"], ["heavy rain", "wet street", "rain drops"]]
    plain = _tiny(tiny_lm, encoder=_HashEncoder(), nearest_class=True)
    voted = _tiny(tiny_lm, tmp_path / "p.jsonl", encoder=_HashEncoder(), nearest_class=True, topic_bank=bank, knn=3,
                  max_candidates_factor=20, sampling=SamplingConfig(batch_size=16, max_new_tokens=6, temperature=3.0))
    assert plain._bank_key() == {} and plain.bank() is None  # no bank: the old cache keys stay valid
    assert voted.key("fog", 0) != plain.key("fog", 0)
    assert voted.key("fog", 0) != _tiny(tiny_lm, encoder=_HashEncoder(), nearest_class=True, topic_bank=bank,
                                         knn=2).key("fog", 0)  # fmt: skip
    strict = _tiny(tiny_lm, encoder=_HashEncoder(), nearest_class=True, topic_bank=bank, knn=3, min_vote=0.6)
    assert strict.key("fog", 0) != voted.key("fog", 0) and strict._bank_key()["min_vote"] == 0.6
    emb, labels = voted.bank()  # type: ignore[misc]
    assert emb.shape == (6, 8) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    run = voted.generate("rain", 3, seed=0)
    assert run.record["filters"]["knn"] == 3 and len(run.record["filters"]["topic_bank"]) == 16
    assert run.texts and run.record["dropped"]["other_class"] > 0  # the vote both keeps and drops lines here
    assert run.record["candidates"] == run.record["kept"] + sum(run.record["dropped"].values())
    for text in run.texts:  # every kept line wins the 3-NN vote for rain, checked here independently
        near = (_HashEncoder().encode([text]) @ emb.T).topk(3).indices[0]
        assert int((labels[near] == 1).sum()) >= 2
    for kw, match in (
        ({"topic_bank": bank[:1]}, "topic_bank needs"),
        ({"topic_bank": [bank[0], []]}, "topic_bank needs"),
        ({"topic_bank": bank, "knn": 7}, r"knn must be in \[1, 6\]"),
        ({"topic_bank": bank, "knn": 3, "min_vote": -0.1}, "min_vote"),
    ):
        with pytest.raises(ValueError, match=match):
            _tiny(tiny_lm, **kw)


def test_recipe_topic_bank_plumbing() -> None:
    from augmentgen.generators.prompts_job import make_llm_prompts
    from augmentgen.recipes.schema import PromptsSpec

    spec = PromptsSpec.model_validate({**WEATHER["prompts"], "source": "llm", "topic_bank_per_class": 3, "knn": 50})
    llm = make_llm_prompts(spec, None)
    assert llm.topic_bank is not None and [len(b) for b in llm.topic_bank] == [3, 3]
    assert all("fog" in t for t in llm.topic_bank[0]) and llm.knn == 6  # knn capped at the bank size
    off = make_llm_prompts(PromptsSpec.model_validate({**WEATHER["prompts"], "topic_bank_per_class": 0}), None)
    assert off.topic_bank is None


def test_llm_messages_and_bad_settings(tiny_lm: Path) -> None:
    llm = _tiny(tiny_lm, system="Be brief.")
    assert llm.messages("rain") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Describe the same street scene in rain: a street in rain."},
    ]
    with pytest.raises(ValueError, match=r"found \['colour'\]"):
        _tiny(tiny_lm, instruction="Describe {name} in {colour}")
    with pytest.raises(ValueError, match="unknown class 'snow'"):
        llm.generate("snow", 2)
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=0)
    with pytest.raises(ValueError, match="GGUF model file does not exist"):
        resolve_model("/nonexistent/model.gguf")
    with pytest.raises(ValueError, match="cannot load causal LM"):
        LLMPrompts(["a"], model=tiny_lm / "missing").load()
    assert resolve_model(SMOLLM2)[1] == "SmolLM2-135M-Instruct.Q4_1.gguf"


# ---- recipe section and `augmentgen prompts` -----------------------------------------------
WEATHER = {
    "name": "weather",
    "data": {"source": "digits"},
    "shards": {"count": 1},
    "evaluate": {"enabled": False},
    "prompts": {
        "source": "template",
        "n_per_class": 4,
        "classes": [
            {"name": "fog", "description": "the same street scene in thick fog", "article": ""},
            {"name": "night", "description": "the same street scene at night", "article": ""},
        ],
    },
}


def test_recipe_prompts_section_validates() -> None:
    from augmentgen.recipes import Recipe

    r = Recipe.model_validate(WEATHER)
    assert r.prompts is not None and r.prompts.source == "template" and r.prompts.classes is not None
    assert Recipe.model_validate({**WEATHER, "prompts": None}).prompts is None
    for bad, match in (
        ({"source": "gpt"}, "source"),
        ({"n_per_class": 0}, "n_per_class"),
        ({"dedupe_threshold": 1.5}, "dedupe_threshold"),
        ({"colour": 1}, "colour"),
        ({"min_words": 9, "max_words": 3}, "min_words"),
        ({"classes": [{"name": "a"}, {"name": "a"}]}, "repeated"),
    ):
        with pytest.raises(ValueError, match=match):
            Recipe.model_validate({**WEATHER, "prompts": {**WEATHER["prompts"], **bad}})  # type: ignore[dict-item]


def test_cli_prompts_writes_and_shows_the_cache(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from augmentgen.cli import app

    recipe = tmp_path / "weather.yaml"
    recipe.write_text(yaml.safe_dump(WEATHER))
    cache = tmp_path / "prompts.jsonl"
    res = CliRunner().invoke(app, ["prompts", str(recipe), "--cache", str(cache)])
    assert res.exit_code == 0, res.output
    assert "fog" in res.output and "night" in res.output and str(cache.name) in res.output
    runs = list(PromptCache(cache).runs())
    assert [r.record["class"] for r in runs] == ["fog", "night"] and all(len(r.prompts) == 4 for r in runs)
    size = cache.stat().st_size
    res = CliRunner().invoke(app, ["prompts", str(recipe), "--cache", str(cache), "--classes", "night"])
    assert res.exit_code == 0 and cache.stat().st_size == size  # a cache hit writes nothing
    res = CliRunner().invoke(app, ["prompts", str(recipe), "--cache", str(cache), "--classes", "snow"])
    assert res.exit_code == 2 and "unknown classes ['snow']" in res.output
    recipe.write_text(yaml.safe_dump({**WEATHER, "prompts": None}))
    res = CliRunner().invoke(app, ["prompts", str(recipe)])
    assert res.exit_code == 2 and "no 'prompts:' section" in res.output


def test_write_prompts_llm_source(tiny_lm: Path, tmp_path: Path) -> None:
    from augmentgen.generators.prompts_job import summarize, write_prompts
    from augmentgen.recipes.schema import PromptsSpec

    spec = PromptsSpec.model_validate({
        **WEATHER["prompts"], "source": "llm", "model": str(tiny_lm), "n_per_class": 2, "min_words": 1,
        "on_topic_threshold": None, "nearest_class": False, "batch_size": 4, "max_new_tokens": 16,
        "temperature": 1.5, "instruction": "Describe the same street scene in {name}.",
    })  # fmt: skip
    runs = write_prompts(spec, tmp_path / "p.jsonl")
    # the tiny model writes noise: a class may run out of its candidate budget, and says so
    assert [r.record["class"] for r in runs] == ["fog", "night"]
    for run, row in zip(runs, summarize(runs), strict=True):
        assert 1 <= row["kept"] <= 2 and run.record["exhausted"] == (row["kept"] < 2)
        assert row["candidates"] == row["kept"] + sum(row["dropped"].values())
    assert [r.texts for r in write_prompts(spec, tmp_path / "p.jsonl")] == [r.texts for r in runs]
    assert runs[0].record["instruction"] == "Describe the same street scene in {name}."


@pytest.mark.slow
def test_real_smollm2_writes_on_topic_prompts(tmp_path: Path) -> None:
    """The offline SmolLM2-135M-Instruct GGUF through the same path users take (about 1 CPU-minute)."""
    pytest.importorskip("gguf")
    from augmentgen.generators.prompts_llm import PRODUCT_INSTRUCTION

    torch.set_num_threads(1)
    llm = LLMPrompts(
        FASHION_MNIST_VOCAB, instruction=PRODUCT_INSTRUCTION, cache=tmp_path / "p.jsonl",
        sampling=SamplingConfig(batch_size=8, max_new_tokens=32),
    )  # fmt: skip
    run = llm.generate("Sneaker", 3, seed=0)
    assert 1 <= len(run.prompts) <= 3
    assert run.record["candidates"] == len(run.prompts) + sum(run.record["dropped"].values())
    enc = llm.encoder
    ref = enc.encode([v.text for v in FASHION_MNIST_VOCAB])
    for p in run.prompts:
        assert 3 <= len(p.text.split()) <= 20 and p.id.startswith(run.key)
        sims = enc.encode([p.text]) @ ref.T
        assert int(sims.argmax()) == 7 and float(sims[0, 7]) >= 0.3  # nearest to the sneaker description
    assert llm.load_seconds is not None and llm.load_seconds > 0
    again = LLMPrompts(
        FASHION_MNIST_VOCAB, instruction=PRODUCT_INSTRUCTION, cache=tmp_path / "p.jsonl",
        sampling=SamplingConfig(batch_size=8, max_new_tokens=32),
    )  # fmt: skip
    assert again.generate("Sneaker", len(run.prompts), seed=0).texts == run.texts and again._lm is None


def _top_p_by_sort(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """The textbook nucleus filter (a full sort), the reference for ``top_p_filter``."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs > top_p
    return torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits.masked_fill(drop, float("-inf")))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6), st.integers(2, 3000), st.floats(0.05, 0.999), st.floats(0.1, 8.0), st.integers(0, 2**31 - 1)
)
def test_top_p_filter_matches_a_full_sort(rows: int, vocab: int, top_p: float, spread: float, seed: int) -> None:
    from augmentgen.generators.llm_sampling import top_p_filter

    logits = torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * spread
    fast, ref = top_p_filter(logits, top_p, first=4), _top_p_by_sort(logits, top_p)
    assert torch.equal(torch.isfinite(fast), torch.isfinite(ref))  # the same kept set
    assert torch.equal(fast[torch.isfinite(fast)], logits[torch.isfinite(ref)])  # kept logits untouched
    assert bool(torch.isfinite(fast).any(1).all())  # at least the most likely token survives
