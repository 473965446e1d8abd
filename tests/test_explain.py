"""Explanations: attention weights, rollout, integrated gradients, words, and the explain CLI."""

from __future__ import annotations

import html.parser
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from classiformer import Classifier, fit, resolve_config
from classiformer.cli import main
from classiformer.config import RNNAttentionConfig, TransformerConfig
from classiformer.explain import (
    Explanation,
    integrated_gradients,
    merge_words,
    ngram_scores,
    rollout_importance,
    rollout_matrix,
    word_groups,
)
from classiformer.models import RNNAttentionClassifier, TransformerClassifier

from .conftest import make_texts

ODD_T = dict(vocab_size=99, max_length=13, embed_dim=30, num_heads=3, ff_dim=37, num_layers=2, hidden_dim=7, num_labels=5)
ODD_R = dict(vocab_size=99, max_length=13, embed_dim=15, hidden_dim=7, attention_dim=11, num_labels=5)


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 99, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    ids[mask == 0] = 0
    return ids, mask


def models() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [TransformerClassifier(TransformerConfig(**ODD_T)).eval(), RNNAttentionClassifier(RNNAttentionConfig(**ODD_R)).eval()]


def test_attention_rows_sum_to_one_and_padding_gets_zero_weight() -> None:
    transformer, rnn = models()
    ids, mask = padded_batch()
    out = transformer(ids, mask, output_attentions=True)
    assert out.attentions is not None and len(out.attentions) == 2
    for a in out.attentions:
        assert a.shape == (3, 3, 9, 9)
        torch.testing.assert_close(a.sum(-1), torch.ones(3, 3, 9))
        assert (a.permute(0, 3, 1, 2)[mask == 0] == 0).all()  # padded keys, every head and query
    w = rnn(ids, mask).pooling_weights
    assert w is not None and w.shape == (3, 9)
    torch.testing.assert_close(w.sum(-1), torch.ones(3))
    assert (w[mask == 0] == 0).all() and (w[mask == 1] > 0).all()


@pytest.mark.parametrize("which", [0, 1])
def test_inputs_embeds_match_input_ids_and_padding_is_ignored(which: int) -> None:
    model = models()[which]
    ids, mask = padded_batch()
    by_ids = model(ids, mask).logits
    by_embeds = model(None, mask, inputs_embeds=model.get_input_embeddings()(ids)).logits
    torch.testing.assert_close(by_ids, by_embeds)
    longer = model(torch.cat([ids, torch.zeros(3, 2, dtype=torch.long)], 1),
                   torch.cat([mask, torch.zeros(3, 2, dtype=torch.long)], 1)).logits
    torch.testing.assert_close(by_ids, longer, rtol=1e-5, atol=1e-5)


def test_rollout_equals_hand_computed_case() -> None:
    # Layer 1, two heads averaging to all-0.5; plus identity, renormalised: [[.75, .25], [.25, .75]].
    layer1 = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])
    # Layer 2, one head attending to token 0: plus identity, renormalised: [[1, 0], [.5, .5]].
    layer2 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    expected = torch.tensor([[1.0, 0.0], [0.5, 0.5]]) @ torch.tensor([[0.75, 0.25], [0.25, 0.75]])
    torch.testing.assert_close(rollout_matrix([layer1, layer2]).float(), expected)
    torch.testing.assert_close(rollout_importance([layer1, layer2]).float(), torch.tensor([0.625, 0.375]))
    torch.testing.assert_close(rollout_importance([layer1, layer2], pooling="cls").float(), torch.tensor([0.75, 0.25]))


def test_rollout_on_a_tiny_model_matches_numpy_and_ignores_padding() -> None:
    transformer = models()[0]
    ids, mask = padded_batch()
    atts = transformer(ids, mask, output_attentions=True).attentions
    assert atts is not None
    row = 1  # 6 real tokens, 3 padded
    n = int(mask[row].sum())
    r = np.eye(n)
    for a in atts:  # by hand on the real tokens only
        m = a[row].detach().mean(0).numpy()[:n, :n] + np.eye(n)
        r = (m / m.sum(1, keepdims=True)) @ r
    got = rollout_importance([a[row].detach() for a in atts], keep=mask[row].bool()).numpy()
    np.testing.assert_allclose(got[:n], r.mean(0), rtol=1e-5, atol=1e-6)
    assert (got[n:] == 0).all()
    assert got.sum() == pytest.approx(1.0)


def ngram_model() -> TransformerClassifier:
    torch.manual_seed(0)
    model = TransformerClassifier(TransformerConfig(**ODD_T, ngram_buckets=31)).eval()
    assert model.ngrams is not None
    with torch.no_grad():
        model.ngrams.pairs.weight.normal_(std=0.1)
    return model


def test_integrated_gradients_are_complete() -> None:
    # Sundararajan et al.'s completeness: scores sum to f(input) - f(baseline). An n-gram branch
    # reads ids, not embeddings, so it stays fixed along the path and completeness holds for the rest.
    for model in [*models(), ngram_model()]:
        ids, mask = padded_batch()
        ids, mask = ids[:1], mask[:1]
        scores = integrated_gradients(model, ids, mask, target=2, steps=256)
        emb = model.get_input_embeddings()(ids)
        branch_ids = ids if getattr(model, "ngrams", None) is not None else None
        with torch.no_grad():
            p = model(branch_ids, mask, inputs_embeds=emb).logits.softmax(-1)[0, 2]
            p0 = model(branch_ids, mask, inputs_embeds=torch.zeros_like(emb)).logits.softmax(-1)[0, 2]
            if branch_ids is not None:  # ids + embeddings of those ids = ids alone
                torch.testing.assert_close(model(ids, mask).logits, model(ids, mask, inputs_embeds=emb).logits)
        assert scores.shape == (9,)
        assert float(scores.sum()) == pytest.approx(float(p - p0), abs=2e-3)


def test_ngram_scores_add_up_to_the_branch_logit() -> None:
    model = ngram_model()
    ids, mask = padded_batch()
    ids = ids[:1]  # 9 real tokens
    keep = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        branch = model.ngrams(ids, keep)[0]  # type: ignore[misc]  # (C,)
        for target in range(5):
            scores = ngram_scores(model.ngrams, ids, target)
            assert scores.shape == (9,)
            assert float(scores.sum()) == pytest.approx(float(branch[target] - branch.mean()), abs=1e-5)
        # one word alone: its own weight, centred, times the scale (no pairs)
        one = ngram_scores(model.ngrams, ids[:, :1], 3)
        w = model.ngrams.words.weight[ids[0, 0]]  # type: ignore[union-attr]
        assert float(one[0]) == pytest.approx(float(model.ngrams.scale * (w[3] - w.mean())), abs=1e-5)  # type: ignore[union-attr]


def test_ngram_scores_of_a_words_only_branch() -> None:
    torch.manual_seed(0)
    model = TransformerClassifier(TransformerConfig(**ODD_T, ngram_buckets=31, ngram_pairs=False)).eval()
    assert model.ngrams is not None and model.ngrams.pairs is None
    with torch.no_grad():
        model.ngrams.words.weight.normal_(std=0.1)
    ids = padded_batch()[0][:1]
    with torch.no_grad():
        branch = model.ngrams(ids, torch.ones_like(ids, dtype=torch.bool))[0]
        scores = ngram_scores(model.ngrams, ids, 2)
    assert float(scores.sum()) == pytest.approx(float(branch[2] - branch.mean()), abs=1e-5)


def test_word_merging() -> None:
    tokens = ["[CLS]", "play", "##ing", "foot", "##ball", "now", "[SEP]"]
    assert word_groups(tokens) == [[0], [1, 2], [3, 4], [5], [6]]
    assert word_groups(["\u2581play", "ing", "\u2581now"]) == [[0, 1], [2]]
    rng = np.random.default_rng(0)
    att = rng.random((2, 3, 7, 7))
    att /= att.sum(-1, keepdims=True)
    words, scores, merged = merge_words(tokens, {"gradient": np.arange(7.0)}, att)
    assert words == ["[CLS]", "playing", "football", "now", "[SEP]"]
    assert scores["gradient"].tolist() == [0.0, 3.0, 7.0, 5.0, 6.0]
    assert merged is not None and merged.shape == (2, 3, 5, 5)
    np.testing.assert_allclose(merged.sum(-1), np.ones((2, 3, 5)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A tiny WordPiece transformer and a tiny RNN, both trained on the toy topics."""
    # Module fixtures run before the per-test isolation fixture: pin the thread count here, or the
    # models depend on how many threads the previous test (e.g. a CLI run) left set.
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("explain")
    runs = {}
    transformer = {"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11, "num_layers": 2}
    # The tests that check what a model learned use word vocabularies: a WordPiece vocabulary differs
    # from run to run (Hugging Face tokenizers breaks merge ties in hash-map order,
    # huggingface/tokenizers#1794), and some draws left the toy model unsure of an easy sentence.
    for family, preset, model, tok in [
        ("transformer", "tiny", transformer, {"vocab_size": 60, "max_length": 16}),
        ("transformer-wordpiece", "tiny", transformer, {"kind": "wordpiece", "vocab_size": 120, "max_length": 16}),
        ("rnn-attention", "rnn-attention", {"embed_dim": 15, "hidden_dim": 9, "attention_dim": 11, "dropout": 0.0},
         {"vocab_size": 60, "max_length": 16}),
        ("transformer-ngram", "tiny", {**transformer, "ngram_buckets": 97}, {"vocab_size": 60, "max_length": 16}),
    ]:
        cfg = resolve_config(preset, model=model, tokenizer=tok,
                             train={"epochs": 10, "batch_size": 16, "lr": 3e-2, "patience": 0})
        fit(cfg, make_texts(240, seed=1), root / family, progress=False)
        runs[family] = root / family
    return runs


def test_explain_api_one_score_per_token_and_deterministic(trained) -> None:
    text = "the report says the coach of the team"
    for family, methods in [("transformer", {"rollout", "gradient"}), ("rnn-attention", {"attention", "gradient"})]:
        clf = Classifier.load(trained[family])
        e1 = clf.explain(text)
        e2 = clf.explain(text)
        assert isinstance(e1, Explanation) and e1.to_dict() == e2.to_dict()
        assert set(e1.importance) == methods
        assert e1.tokens == clf.tokenizer.tokens(text)
        for scores in e1.importance.values():
            assert len(scores) == len(e1.tokens)
        assert e1.label == "sports" and e1.probabilities["sports"] == max(e1.probabilities.values())
        assert sum(e1.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        # The topic word carries the signal; filler words carry none. Gradients must find it.
        grad = e1.importance["gradient"]
        assert e1.tokens[int(np.argmax(grad))] in ("coach", "team")
        if family == "transformer":
            assert e1.attentions is not None and np.asarray(e1.attentions).shape == (2, 3, len(e1.tokens), len(e1.tokens))
        else:
            assert e1.attentions is None
            assert sum(e1.importance["attention"]) == pytest.approx(1.0, abs=1e-5)
        json.dumps(e1.to_dict())


def test_explain_says_gradients_miss_the_ngram_branch_and_shows_its_part(trained, tmp_path: Path, capsys) -> None:
    clf = Classifier.load(trained["transformer-ngram"])
    text = "the report says the coach of the team"
    e = clf.explain(text)
    assert set(e.importance) == {"rollout", "gradient", "ngram"}
    assert len(e.notes) == 1 and "only the transformer part" in e.notes[0]
    assert e.tokens[int(np.argmax(e.importance["ngram"]))] in ("coach", "team")  # the branch learned the topic words
    ids = torch.as_tensor(clf.tokenizer.encode([text])[0])[None]
    with torch.no_grad():
        branch = clf.model.ngrams(ids, torch.ones_like(ids, dtype=torch.bool))[0]  # type: ignore[operator]
    target = clf.labels.index(e.label)
    assert sum(e.importance["ngram"]) == pytest.approx(float(branch[target] - branch.mean()), abs=1e-4)
    assert f"the n-gram branch gives {float(branch[target] - branch.mean()):.3g}" in e.notes[0]
    assert Classifier.load(trained["transformer"]).explain(text).notes == []  # no branch, nothing to say
    assert main(["explain", str(trained["transformer-ngram"]), text, "-o", str(tmp_path)]) == 0
    assert "ngram=" in capsys.readouterr().out
    assert "only the transformer part" in (tmp_path / "explanation.html").read_text()


def test_explain_words_gives_one_score_per_word(trained) -> None:
    clf = Classifier.load(trained["transformer-wordpiece"])
    text = "the footballer scored goals"
    tokens = clf.tokenizer.tokens(text)
    assert any(t.startswith("##") for t in tokens)  # the small vocabulary must split something
    e = clf.explain(text, words=True)
    assert e.tokens == text.split()
    assert all(len(s) == 4 for s in e.importance.values())
    assert np.asarray(e.attentions).shape[-2:] == (4, 4)
    np.testing.assert_allclose(np.asarray(e.attentions).sum(-1), 1.0, atol=1e-4)


def test_rnn_learns_the_toy_task_and_round_trips(trained, tmp_path: Path) -> None:
    from classiformer import evaluate
    from classiformer.checkpoint import load_checkpoint, save_checkpoint

    clf = Classifier.load(trained["rnn-attention"])
    assert clf.meta.family == "rnn-attention" and isinstance(clf.model, RNNAttentionClassifier)
    assert evaluate(clf, make_texts(60, seed=2), progress=False)["accuracy"] > 0.85
    texts = make_texts(20, seed=5).texts
    save_checkpoint(tmp_path / "copy", clf.model, clf.tokenizer, clf.meta)
    model, _, meta = load_checkpoint(tmp_path / "copy")
    assert meta.family == "rnn-attention" and meta.temperature == clf.temperature
    np.testing.assert_array_equal(Classifier(model, clf.tokenizer, meta).logits(texts), clf.logits(texts))


def test_explain_rejects_unknown_method(trained) -> None:
    with pytest.raises(ValueError, match="unknown explanation method"):
        Classifier.load(trained["transformer"]).explain("goal", methods=["saliency"])


class _Checker(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")


@pytest.mark.parametrize("family", ["transformer", "rnn-attention"])
def test_explain_cli_writes_png_html_json(trained, tmp_path: Path, family: str, capsys) -> None:
    out = tmp_path / "out"
    code = main(["explain", str(trained[family]), "the coach and the team", "stock market & <prices>",
                 "--output", str(out), "--no-progress"])
    assert code == 0
    assert "explanation_1.html" in capsys.readouterr().out
    pngs = sorted(out.glob("explanation_1_*.png"))
    assert [p.name for p in pngs] == (
        ["explanation_1_layer1.png", "explanation_1_layer2.png"] if family == "transformer" else ["explanation_1_attention.png"]
    )
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert plt.imread(p).ndim == 3
    data = json.loads((out / "explanation_2.json").read_text())
    assert set(data) == {"text", "tokens", "label", "probabilities", "importance", "attentions", "special", "notes",
                         "predicted", "multi_label"}
    assert data["text"] == "stock market & <prices>"
    assert data["label"] == max(data["probabilities"], key=data["probabilities"].get)
    assert data["predicted"] == [data["label"]] and data["multi_label"] is False
    page = (out / "explanation_2.html").read_text()
    checker = _Checker()
    checker.feed(page)
    assert "html" in checker.tags and "table" in checker.tags
    assert checker.images and all(src.startswith("data:image/png;base64,") for src in checker.images)
    assert "&lt;prices&gt;" in page and "<prices>" not in page  # the text is escaped


def test_explain_cli_input_file_and_missing_text(trained, tmp_path: Path, capsys) -> None:
    f = tmp_path / "texts.txt"
    f.write_text("the match\nthe oil price\nnew robot\n")
    assert main(["explain", str(trained["transformer"]), "--input", str(f), "--limit", "2", "-o", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in (tmp_path / "o").glob("*.json")) == ["explanation_1.json", "explanation_2.json"]
    assert main(["explain", str(trained["transformer"])]) == 1
    assert "no texts given" in capsys.readouterr().err


def test_token_strings_fall_back_to_the_wrapped_tokenizer() -> None:
    from classiformer.explain import token_strings

    class HFLike:  # a Hugging Face tokenizer names every id, special tokens included
        def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
            return [{101: "[CLS]", 102: "[SEP]", 7: "goal"}[i] for i in ids]

    class Wrapper:  # whose tokens() leaves out the special tokens encode() adds
        def __init__(self) -> None:
            self.hf = HFLike()

        def tokens(self, text: str) -> list[str]:
            return text.split()

    assert token_strings(Wrapper(), "goal", np.array([101, 7, 102])) == ["[CLS]", "goal", "[SEP]"]


def test_a_text_without_tokens_has_nothing_to_explain(trained) -> None:
    clf = Classifier.load(trained["rnn-attention"])
    for text in ("", "!!! ..."):
        with pytest.raises(ValueError, match="no tokens to explain"):
            clf.explain(text)
    assert clf.explain("zzzunknown").tokens == ["zzzunknown"]  # unknown words still get explained
