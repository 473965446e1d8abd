"""Pretrained encoders (family ``hf``): a tiny odd-sized BERT written to a temp folder stands in for
a downloaded model, so everything runs offline in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from classiformer import Classifier, fit, resolve_config
from classiformer.checkpoint import load_checkpoint
from classiformer.cli import main
from classiformer.config import ConfigError
from classiformer.data.batching import collate
from classiformer.hub import ModelSourceError, resolve_source
from classiformer.models import PretrainedClassifier

from .conftest import FILLER, TOPICS, make_texts, write_jsonl

MAX_LEN = 24  # the tiny encoder's position limit is 40; tests stay below it


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'pretrained' BERT: odd sizes (hidden 36, 3 heads, 2 layers, intermediate 37), random
    weights, and a WordPiece vocabulary of the toy data's words plus a few word pieces."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    words = sorted({w for ws in TOPICS.values() for w in ws} | set(FILLER))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "##s", "##ing", "x", "##x"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True, model_max_length=40)
    assert tok("goal team")["input_ids"] == [2, vocab.index("goal"), vocab.index("team"), 3]
    tok.save_pretrained(str(folder))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab), hidden_size=36, num_attention_heads=3, num_hidden_layers=2,
        intermediate_size=37, max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    BertModel(cfg).save_pretrained(str(folder))
    return folder


def config_for(source: Path, mode: str, **train: object):
    model: dict[str, object] = {"source": str(source)}
    if mode == "partial":
        model["unfreeze_top"] = 1
    if mode == "frozen":
        model["dropout"] = 0.0
    # The tiny encoder is random, not pretrained: its frozen features are weak, so the head needs a
    # high rate and many epochs (cheap: features are cached after the first).
    defaults = {"frozen": dict(epochs=60, lr=0.1), "partial": dict(epochs=6, lr=1e-2), "finetune": dict(epochs=4, lr=3e-3)}[mode]
    train = {"batch_size": 16, "patience": 0, "seed": 3, **defaults, **train}
    return resolve_config(mode, model=model, tokenizer={"max_length": MAX_LEN}, train=train)


def accuracy(clf: Classifier, data) -> float:
    return float(np.mean(np.array(clf.predict(data.texts)) == np.array(data.labels)))


@pytest.mark.parametrize("mode", ["frozen", "finetune", "partial"])
def test_each_mode_learns_the_toy_task(tiny_bert: Path, tmp_path: Path, mode: str) -> None:
    result = fit(config_for(tiny_bert, mode), make_texts(240, seed=1), tmp_path / mode, progress=False)
    clf = Classifier.load(result.best_dir)
    assert clf.meta.family == "hf" and clf.labels == ["money", "sports", "tech"]
    # chance is 1/3; a random encoder that stays (partly) frozen cannot reach what fine-tuning does
    assert accuracy(clf, make_texts(60, seed=2)) >= (0.95 if mode == "finetune" else 0.8)


def test_frozen_mode_never_changes_the_encoder(tiny_bert: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    result = fit(config_for(tiny_bert, "frozen", epochs=2), make_texts(120, seed=1), tmp_path / "run", progress=False)
    original = AutoModel.from_pretrained(str(tiny_bert)).state_dict()
    model, _, _ = load_checkpoint(result.last_dir)
    assert isinstance(model, PretrainedClassifier)
    trained = model.encoder.state_dict()
    assert set(trained) == set(original)
    assert all(torch.equal(trained[k], original[k]) for k in original)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


@pytest.mark.parametrize("cache_mb", [1024, 0])  # in memory; memory-mapped in the run folder
def test_frozen_training_encodes_each_example_once(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_mb: int
) -> None:
    pooled_rows: list[int] = []
    cache_files: list[int] = []
    pool = PretrainedClassifier._pool

    def counting_pool(self, out, mask):  # type: ignore[no-untyped-def]
        pooled_rows.append(len(mask))
        return pool(self, out, mask)

    monkeypatch.setattr(PretrainedClassifier, "_pool", counting_pool)
    data = make_texts(120, seed=1)
    rows, history = {}, {}
    for epochs in (1, 4):
        pooled_rows.clear()
        run = tmp_path / f"run{epochs}"
        cfg = config_for(tiny_bert, "frozen", epochs=epochs)
        cfg.model.feature_cache_mb = cache_mb

        def count_files(step: int, folder: Path = run / "feature_cache") -> None:
            cache_files.append(len(list(folder.glob("*.npy"))))

        history[epochs] = fit(cfg, data, run, progress=False, on_step=count_files).history
        rows[epochs] = sum(pooled_rows)
        assert not list((run / "feature_cache").glob("*.npy")), "the memory-mapped cache is deleted after training"
    # train (108) and validation (12) rows go through the encoder on the first epoch only; the
    # temperature fit at the end encodes the validation rows once more, with the reloaded best model
    assert rows[4] == rows[1] == 108 + 12 + 12
    assert set(cache_files) == ({2} if cache_mb == 0 else {0})
    assert len(history[4]) == 4  # later epochs still validate: the head changes


def test_partial_mode_trains_only_the_top_layers(tiny_bert: Path) -> None:
    cfg = config_for(tiny_bert, "partial")
    cfg.model.num_labels = 3
    model, _ = PretrainedClassifier.from_source(cfg.model, cfg.tokenizer)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".layer.1." in n for n in trainable) and not any(".layer.0." in n for n in trainable)
    assert not any("embeddings" in n for n in trainable) and any("classifier" in n for n in trainable)
    with pytest.raises(ConfigError, match="exceeds the encoder's 2 layers"):
        cfg.model.unfreeze_top = 3
        PretrainedClassifier.from_source(cfg.model, cfg.tokenizer)


def test_frozen_feature_cache_matches_recomputing(tiny_bert: Path) -> None:
    cfg = config_for(tiny_bert, "frozen")
    cfg.model.num_labels = 3
    model, tok = PretrainedClassifier.from_source(cfg.model, cfg.tokenizer)
    texts = make_texts(9, seed=4).texts
    ids = tok.encode(texts)
    calls: list[int] = []
    model.hf.register_forward_hook(lambda m, a, k: calls.append(1), with_kwargs=False)
    model.train()
    order = [np.array([0, 3, 5, 8]), np.array([1, 2, 4, 6, 7]), np.array([8, 0, 1, 2]), np.array([3, 4, 5, 6, 7])]
    cached = {}
    for idx in order:
        batch = collate([ids[i] for i in idx], tok.pad_id, index=idx)
        logits = model(**batch).logits.detach()
        cached.update({int(i): logits[j] for j, i in enumerate(idx)})
    assert len(calls) == 2, "each training example must go through the encoder once"
    model.eval()
    with torch.no_grad():
        fresh = model(**collate(ids, tok.pad_id)).logits
    for i in range(len(texts)):
        torch.testing.assert_close(cached[i], fresh[i], atol=1e-5, rtol=1e-5)


def test_finetuned_checkpoint_is_a_hugging_face_folder(tiny_bert: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    result = fit(config_for(tiny_bert, "finetune", epochs=1), make_texts(90, seed=1), tmp_path / "run", progress=False)
    hf = AutoModelForSequenceClassification.from_pretrained(str(result.best_dir)).eval()
    assert hf.config.id2label == {0: "money", 1: "sports", 2: "tech"}
    assert hf.config.label2id == {"money": 0, "sports": 1, "tech": 2}
    assert json.loads((result.best_dir / "classiformer.json").read_text())["family"] == "hf"
    clf = Classifier.load(result.best_dir)
    texts = make_texts(12, seed=5).texts
    batch = collate(clf.tokenizer.encode(texts), clf.tokenizer.pad_id)
    with torch.no_grad():
        theirs = hf(**batch).logits.numpy()
    np.testing.assert_allclose(clf.logits(texts), theirs, atol=1e-6, rtol=1e-6)
    # The tokenizer sits beside the weights: AutoTokenizer (hence pipeline) and training on from this
    # folder (--model FOLDER) read the vocabulary the model learned with.
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(result.best_dir))(texts)["input_ids"] == [list(x) for x in clf.tokenizer.encode(texts)]
    cfg = config_for(result.best_dir, "finetune")
    _, again = PretrainedClassifier.from_source(cfg.model, cfg.tokenizer)
    assert [list(x) for x in again.encode(texts)] == [list(x) for x in clf.tokenizer.encode(texts)]


def test_a_classifier_source_keeps_its_head_only_for_the_same_labels(tiny_bert: Path, tmp_path: Path) -> None:
    """Training from a fine-tuned classifier (--model FOLDER): the same labels continue from its head;
    other labels, even as many, get a fresh head rather than one trained for something else."""
    import dataclasses
    import shutil

    from transformers import BertForSequenceClassification

    source = BertForSequenceClassification.from_pretrained(
        str(tiny_bert), num_labels=3, id2label={0: "money", 1: "sports", 2: "tech"}, label2id={"money": 0, "sports": 1, "tech": 2}
    )
    with torch.no_grad():
        source.classifier.weight.fill_(0.5)
        source.classifier.bias.fill_(0.25)
    shutil.copytree(tiny_bert, tmp_path / "classifier")  # its tokenizer files; config and weights replaced:
    source.save_pretrained(str(tmp_path / "classifier"))
    cfg = config_for(tmp_path / "classifier", "finetune")

    def head(labels: list[str]) -> torch.nn.Linear:
        model_cfg = dataclasses.replace(cfg.model, num_labels=len(labels), labels=labels)
        model, _ = PretrainedClassifier.from_source(model_cfg, cfg.tokenizer)
        assert model.hf.config.id2label == dict(enumerate(labels))
        return model.hf.classifier

    same = head(["money", "sports", "tech"])
    assert torch.all(same.weight == 0.5) and torch.all(same.bias == 0.25)
    other = head(["a", "b", "c"])
    assert not torch.any(other.weight == 0.5) and torch.all(other.bias == 0)
    assert 0.01 < float(other.weight.detach().std()) < 0.03  # BERT's initializer_range, 0.02
    assert head(["a", "b"]).weight.shape == (2, 36)  # another count: Hugging Face's new head


def test_gpu_style_padding_changes_no_logit(tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU batches are padded to a multiple of 64 tokens; the models mask padding, so the
    logits are those of tight padding (checked here on a CPU: batches of 2, padded to a multiple of 4)."""
    import classiformer.inference

    result = fit(config_for(tiny_bert, "finetune", epochs=1), make_texts(60, seed=1), tmp_path / "run", progress=False)
    texts = make_texts(20, seed=4).texts
    tight = Classifier.load(result.best_dir, batch_size=2).logits(texts)
    widths: list[int] = []
    monkeypatch.setattr(classiformer.inference, "pad_multiple", lambda device: 4)
    clf = Classifier.load(result.best_dir, batch_size=2)
    clf.model.register_forward_pre_hook(lambda m, a, kw: widths.append(kw["input_ids"].shape[1]), with_kwargs=True)
    np.testing.assert_allclose(clf.logits(texts), tight, atol=1e-5, rtol=1e-5)
    longest = max(len(x) for x in clf.tokenizer.encode(texts))
    assert all(w % 4 == 0 or w == longest for w in widths) and len(set(widths)) > 1


def test_gpu_style_padding_trains_the_same(tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import classiformer.training

    cfg = config_for(tiny_bert, "finetune", epochs=2)
    cfg.model.dropout = 0.0
    data = make_texts(60, seed=1)
    tight = fit(cfg, data, tmp_path / "tight", progress=False).history
    monkeypatch.setattr(classiformer.training, "pad_multiple", lambda device: 8)
    padded = fit(cfg, data, tmp_path / "padded", progress=False).history
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose([h[key] for h in padded], [h[key] for h in tight], rtol=1e-4)


def test_cls_only_inference_equals_the_full_forward_pass(tiny_bert: Path) -> None:
    """The last layer computes only [CLS]: same logits (padding or not) and, in training, same gradients."""
    cfg = config_for(tiny_bert, "finetune")
    cfg.model.num_labels = 3
    model, tok = PretrainedClassifier.from_source(cfg.model, cfg.tokenizer)
    model.eval()
    assert model._cls_only_ok()
    texts = ["goal team", "the new chip and the data report today", "x", "market price bank goal"]
    batch = collate(tok.encode(texts), tok.pad_id)
    with torch.no_grad():
        fast = model(**batch).logits
        full = model.hf(**batch).logits
        alone = [model(**collate(tok.encode([t]), tok.pad_id)).logits[0] for t in texts]
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(torch.stack(alone), full, atol=1e-6, rtol=1e-6)
    # Training takes the same path: loss and every gradient equal the full pass's (the tiny
    # encoder has no dropout, so the two are deterministic).
    model.train()
    labels = torch.tensor([0, 1, 2, 1])
    grads = []
    for run in (lambda: model(**batch, labels=labels).loss, lambda: model.hf(**batch, labels=labels).loss):
        model.zero_grad()
        run().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == len(list(model.parameters()))
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5, msg=name)


def test_attentions_and_input_embeddings(tiny_bert: Path) -> None:
    cfg = config_for(tiny_bert, "finetune")
    cfg.model.num_labels = 3
    model, tok = PretrainedClassifier.from_source(cfg.model, cfg.tokenizer)
    model.eval()
    batch = collate(tok.encode(["goal team", "the new chip and the data report today"]), tok.pad_id)
    with torch.no_grad():
        out = model(**batch, output_attentions=True)
    assert out.attentions is not None and len(out.attentions) == 2
    att = out.attentions[0]
    assert att.shape == (2, 3, batch["input_ids"].shape[1], batch["input_ids"].shape[1])
    torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:3]))
    assert float(att[0, :, :, 4:].abs().max()) == 0.0  # "[CLS] goal team [SEP]": padded keys get no weight
    embeds = model.get_input_embeddings()(batch["input_ids"])
    with torch.no_grad():
        by_embeds = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(by_embeds, out.logits)
    assert model.hf.config._attn_implementation == "sdpa"  # switched back after the eager pass


def test_long_text_policies(tiny_bert: Path, tmp_path: Path) -> None:
    result = fit(config_for(tiny_bert, "finetune", epochs=1), make_texts(60, seed=1), tmp_path / "run", progress=False)
    words = [w for ws in TOPICS.values() for w in ws] * 3  # 72 words, one token each
    text = " ".join(words)
    clf = Classifier.load(result.best_dir, long_text="chunks")
    tok = clf.tokenizer
    w = MAX_LEN - 2
    windows, owner = tok.encode_windows(["goal team", text])
    assert owner.tolist()[0] == 0 and set(owner.tolist()[1:]) == {1}
    long_windows = [x[1:-1].tolist() for x, o in zip(windows, owner, strict=False) if o == 1]
    content = tok.tok(text, add_special_tokens=False)["input_ids"]
    assert all(len(x) == w for x in long_windows)
    assert long_windows[0] == content[:w] and long_windows[-1] == content[-w:]
    covered = set()
    pos = 0
    for x in long_windows:  # windows advance by 3/4 of a window and overlap their predecessor
        start = next(s for s in range(pos, len(content)) if content[s : s + w] == x)
        assert start == 0 or start - pos <= w
        covered.update(range(start, start + w))
        pos = start
    assert covered == set(range(len(content)))
    # chunks: the text's logits are the mean of its windows' logits, each computed on its own
    per_window = []
    with torch.no_grad():
        for x in windows[1:]:
            per_window.append(clf.model(**collate([x], tok.pad_id)).logits[0].numpy())
    np.testing.assert_allclose(clf.logits([text])[0], np.mean(per_window, axis=0), atol=1e-5)
    assert np.allclose(clf.logits(["goal team"]), Classifier.load(result.best_dir).logits(["goal team"]), atol=1e-6)
    # truncate keeps the head; head-tail keeps a quarter from the head, the rest from the tail
    tok.long_text = "truncate"
    assert tok.encode([text])[0][1:-1].tolist() == content[:w]
    tok.long_text = "head-tail"
    ht = tok.encode([text])[0]
    assert len(ht) == MAX_LEN and ht[1:-1].tolist() == content[: w // 4] + content[-(w - w // 4) :]
    assert tok.tokens(text)[0] == "[CLS]" and tok.tokens(text)[-1] == "[SEP]"


def test_bad_sources_give_clear_errors(tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="not in the local Hugging Face cache"):
        resolve_source("no-such-org/no-such-model-xyz")
    with pytest.raises(ModelSourceError, match="no such model folder"):
        resolve_source(str(tmp_path / "missing" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="no config.json"):
        resolve_source(str(tmp_path / "empty"))
    assert Path(resolve_source("minilm"), "config.json").exists()
    bare = tmp_path / "weights_only"  # a model folder without tokenizer files
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((tiny_bert / name).read_bytes())
    with pytest.raises(ModelSourceError, match="weights_only: no tokenizer vocabulary found"):
        cfg = resolve_config("finetune", model={"source": str(bare)}, tokenizer={"max_length": 16})
        PretrainedClassifier.from_source(cfg.model, cfg.tokenizer)
    with pytest.raises(ConfigError, match="preset 'base' is for 'transformer' models"):
        resolve_config("base", family="hf")
    with pytest.raises(ConfigError, match=r"attention_dropout must be in \[0, 1\)"):
        resolve_config("finetune", model={"attention_dropout": 1.5})
    with pytest.raises(ConfigError, match="limit of 40"):
        cfg = resolve_config("finetune", model={"source": str(tiny_bert)}, tokenizer={"max_length": 64})
        PretrainedClassifier.from_source(cfg.model, cfg.tokenizer)


def test_cli_train_evaluate_predict(tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train, test = write_jsonl(tmp_path / "train.jsonl", 150, 1), write_jsonl(tmp_path / "test.jsonl", 30, 2)
    run = tmp_path / "run"
    args = ["train", "--model", str(tiny_bert), "--mode", "finetune", "--train", str(train), "--test", str(test),
            "--output", str(run), "--epochs", "3", "--lr", "3e-3", "--batch-size", "16", "--max-length", "20",
            "--attention-dropout", "0.05", "--no-progress"]
    assert main(args) == 0
    assert "accuracy" in capsys.readouterr().out
    saved = json.loads((run / "best" / "config.json").read_text())
    assert saved["attention_probs_dropout_prob"] == 0.05  # the tiny encoder's own is 0
    assert Classifier.load(run / "best").model.hf.base_model.encoder.layer[0].attention.self.dropout.p == 0.05
    assert main(["evaluate", str(run), "--test", str(test), "--long-text", "chunks", "--no-progress"]) == 0
    assert main(["predict", str(run), "goal goal team", "--long-text", "head-tail", "--bf16"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["label"] == "sports"
    assert main(["train", "--model", "no-such-org/bogus-xyz", "--train", str(train), "--output", str(tmp_path / "x")]) == 1
    assert "not in the local Hugging Face cache" in capsys.readouterr().err


@pytest.mark.parametrize("on_disk", [False, True])
def test_feature_cache_computes_once_and_rejects_changed_examples(tmp_path: Path, on_disk: bool) -> None:
    from classiformer.models.feature_cache import FeatureCache

    path = tmp_path / "c" / "train.npy" if on_disk else None
    cache = FeatureCache(3, 4, path)
    calls: list[int] = []

    def compute(todo: torch.Tensor) -> torch.Tensor:
        calls.append(int(todo.sum()))
        return torch.arange(3.0).repeat(len(todo), 1)[todo] + 10 * len(calls)

    index, lens = torch.tensor([2, 0, 3, 1]), torch.tensor([5, 6, 7, 8])
    first = cache.lookup(index, lens, compute)
    again = cache.lookup(index[:2], lens[:2], compute)
    assert calls == [4] and torch.equal(again, first[:2])
    with pytest.raises(RuntimeError, match="indices changed meaning"):
        cache.lookup(torch.tensor([2]), torch.tensor([9]), compute)
    if on_disk:
        assert path is not None and path.exists()
        with pytest.raises(IndexError, match="outside the feature cache"):
            cache.lookup(torch.tensor([4]), torch.tensor([1]), compute)
        cache.close()
        assert not path.exists()
    else:
        cache.lookup(torch.tensor([9]), torch.tensor([1]), compute)  # memory caches grow
        assert len(cache) >= 10


def test_layer_decay_gives_lower_layers_smaller_rates(tiny_bert: Path) -> None:
    from classiformer.models import build_model
    from classiformer.training import param_groups

    cfg = config_for(tiny_bert, "finetune")
    model, _ = PretrainedClassifier.from_source(cfg.model, cfg.tokenizer)
    groups = param_groups(model, 0.01, 1e-3, layer_decay=0.5)
    rate = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    enc = model.encoder
    assert rate[id(model.hf.classifier.weight)] == (1e-3, 0.01)  # top: head and pooler
    assert rate[id(enc.pooler.dense.bias)] == (1e-3, 0.0)
    assert rate[id(enc.encoder.layer[1].output.dense.weight)] == (5e-4, 0.01)
    assert rate[id(enc.encoder.layer[0].attention.self.query.weight)] == (2.5e-4, 0.01)
    assert rate[id(enc.embeddings.word_embeddings.weight)] == (1.25e-4, 0.01)
    assert rate[id(enc.embeddings.LayerNorm.weight)] == (1.25e-4, 0.0)
    assert len(rate) == len(list(model.parameters()))
    assert groups[0]["lr"] == 1e-3  # the top group first: the rate the training log reports
    # Without decay: two groups, one rate; a model without layer depths refuses decay.
    assert {g["lr"] for g in param_groups(model, 0.01, 1e-3)} == {1e-3}
    tiny = resolve_config("tiny")
    tiny.model.vocab_size = 50
    scratch = build_model("transformer", tiny.model)
    with pytest.raises(ConfigError, match="layer_decay needs a pretrained encoder"):
        param_groups(scratch, 0.01, 1e-3, layer_decay=0.9)
    with pytest.raises(ConfigError, match=r"layer_decay must be in \(0, 1\]"):
        resolve_config("finetune", train={"layer_decay": 0.0})


@pytest.mark.parametrize("mode", ["finetune", "frozen"])
def test_head_lr_applies_to_the_new_classifier_only(tiny_bert: Path, mode: str) -> None:
    from classiformer.models import build_model
    from classiformer.training import param_groups

    cfg = config_for(tiny_bert, mode)
    model, _ = PretrainedClassifier.from_source(cfg.model, cfg.tokenizer)
    groups = param_groups(model, 0.01, 1e-3, layer_decay=0.5 if mode == "finetune" else 1.0, head_lr=3e-2)
    rate = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert len(rate) == sum(p.requires_grad for p in model.parameters())
    head = model.head_parameters()
    assert head and all(rate[id(p)][0] == 3e-2 for p in head)
    if mode == "finetune":
        assert {id(p) for p in head} == {id(model.hf.classifier.weight), id(model.hf.classifier.bias)}
        assert rate[id(model.hf.classifier.weight)] == (3e-2, 0.01)
        assert rate[id(model.hf.classifier.bias)] == (3e-2, 0.0)
        # The pretrained pooler is the body's top, not the head: the top rate, no decay factor.
        assert rate[id(model.encoder.pooler.dense.weight)] == (1e-3, 0.01)
        assert rate[id(model.encoder.encoder.layer[0].attention.self.query.weight)] == (2.5e-4, 0.01)
        assert groups[0]["lr"] == 1e-3  # the body's rate stays the one the training log reports
    # From-scratch models name their output layer; 0 keeps one rate; a negative rate is refused.
    tiny = resolve_config("tiny")
    tiny.model.vocab_size = 50
    scratch = build_model("transformer", tiny.model)
    scratch_rates = {id(p): g["lr"] for g in param_groups(scratch, 0.01, 1e-3, head_lr=5e-3) for p in g["params"]}
    assert scratch_rates[id(scratch.head.weight)] == 5e-3 and scratch_rates[id(scratch.tok_emb.weight)] == 1e-3
    assert {g["lr"] for g in param_groups(scratch, 0.01, 1e-3)} == {1e-3}
    with pytest.raises(ConfigError, match="head_lr must be 0"):
        resolve_config("finetune", train={"head_lr": -1.0})


def test_head_lr_from_the_command_line(tiny_bert: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", 48, 1)
    run = tmp_path / "run"
    assert main(["train", "--model", str(tiny_bert), "--mode", "finetune", "--train", str(train), "--output", str(run),
                 "--epochs", "1", "--batch-size", "16", "--max-length", "20", "--head-lr", "0.02", "--no-progress"]) == 0
    assert load_checkpoint(run / "best")[2].train["head_lr"] == 0.02
