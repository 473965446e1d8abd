"""Short probes behind single figures in docs/benchmarks.md (each prints its result):

    python bench/probes.py deletion-speed      # lesson training samples/s on a quarter of IMDB, 2 epochs
    python bench/probes.py cls-only            # fine-tuned BERT, inference and training steps: full pass vs [CLS]-only last layer
    python bench/probes.py attention-dropout   # MiniLM training steps at 256 tokens with and without attention dropout
    python bench/probes.py ngram-linear        # a linear model over words and hashed word pairs on IMDB
    python bench/probes.py finetune-bf16       # MiniLM fine-tuning samples/s at 256 tokens, fp32 vs bf16
    python bench/probes.py memory [--trim-every N]  # resident memory while fine-tuning MiniLM at 512 tokens
    python bench/probes.py ceiling --set sst2 RUN ...  # several fine-tuned runs: each, their ensemble, their weight average

They use ../shared/data like bench/scratch.py and run in one to five minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hardware import header
from scratch import DATA, load_set

from classiformer import fit, resolve_config
from classiformer.data import TextDataset
from classiformer.tokenizers.words import WordVectorizer


def deletion_speed(train: TextDataset, out: Path) -> None:
    sub = train.subset(list(range(0, len(train), 4)))
    result = fit(resolve_config("lesson", train={"epochs": 2, "patience": 0}), sub, out, overwrite=True, progress=False)
    print(f"lesson on {len(sub)} IMDB reviews, 2 epochs: {result.train_samples_per_sec:,.0f} training samples/s")


def cls_only(sst2_test: TextDataset) -> None:
    from classiformer.config import PretrainedConfig, TokenizerConfig
    from classiformer.data import collate
    from classiformer.models import PretrainedClassifier
    from classiformer.tokenizers.hf import HFTokenizer

    model, tok = PretrainedClassifier.from_source(
        PretrainedConfig(source="minilm", mode="finetune", num_labels=2), TokenizerConfig(kind="hf", max_length=128)
    )
    model.eval()
    ids = tok.encode(sst2_test.texts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches = [collate([ids[i] for i in order[s : s + 64]], tok.pad_id) for s in range(0, len(order), 64)]
    runs = {"full pass": lambda b: model.hf(**b).logits, "[CLS]-only last layer": lambda b: model(**b).logits}
    with torch.inference_mode():
        for _ in range(2):
            for name, run in runs.items():
                t = time.perf_counter()
                for b in batches:
                    run(b)
                print(f"inference, {name}: {len(ids) / (time.perf_counter() - t):,.0f} docs/s")
    # Training steps (forward and backward, batches of 32) on the same sentences and on IMDB reviews
    # cut to 256 tokens, fp32 and bf16 autocast.
    model.train()
    long_tok = HFTokenizer(tok.tok, 256, "head-tail")
    sets = {"SST-2": ids, "IMDB (256 tokens)": long_tok.encode(load_set("imdb", DATA)[0].texts[:192])}
    for set_name, rows in sets.items():
        tb = [collate(rows[s : s + 32], tok.pad_id) for s in range(0, len(rows), 32)]
        for b in tb:
            b["labels"] = torch.zeros(len(b["input_ids"]), dtype=torch.long)
        train_runs = {"full pass": lambda b: model.hf(**b).loss, "[CLS]-only last layer": lambda b: model(**b).loss}
        for bf16 in (False, True):
            for _ in range(2):
                for name, run in train_runs.items():
                    t = time.perf_counter()
                    for b in tb:
                        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                            loss = run(b)
                        loss.backward()
                        model.zero_grad(set_to_none=True)
                    speed = len(rows) / (time.perf_counter() - t)
                    print(f"training, {set_name}, {'bf16' if bf16 else 'fp32'}, {name}: {speed:,.1f} samples/s")


def attention_dropout(train: TextDataset) -> None:
    """MiniLM training steps (bf16 autocast, batches of 32, 128 IMDB reviews at 256 tokens) with the
    checkpoint's attention dropout (0.1) and without it: PyTorch's fused CPU attention kernel has no
    dropout, so with it every layer falls back to the unfused attention."""
    from classiformer.config import PretrainedConfig, TokenizerConfig
    from classiformer.data import collate
    from classiformer.models import PretrainedClassifier

    tok_cfg = TokenizerConfig(kind="hf", max_length=256, long_text="head-tail")
    for _ in range(2):
        for rate in (None, 0.0):
            model, tok = PretrainedClassifier.from_source(
                PretrainedConfig(source="minilm", mode="finetune", num_labels=2, attention_dropout=rate), tok_cfg
            )
            model.train()
            rows = tok.encode(train.texts[:128])
            t = time.perf_counter()
            for s in range(0, len(rows), 32):
                batch = collate(rows[s : s + 32], tok.pad_id)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = model(**batch, labels=torch.zeros(len(batch["input_ids"]), dtype=torch.long)).loss
                loss.backward()
                model.zero_grad(set_to_none=True)
            label = "checkpoint's 0.1" if rate is None else f"{rate}"
            print(f"attention dropout {label}: {len(rows) / (time.perf_counter() - t):.1f} training samples/s")


def ngram_linear(train: TextDataset, test: TextDataset, max_length: int, epochs: int = 8, lr: float = 0.05) -> None:
    """Adam on mean-pooled word and word-pair weights, constant step, every training review."""
    buckets = 2**21
    labels = sorted(set(train.labels))
    tok = WordVectorizer.fit(train.texts, 100_000, max_length)

    def encode(ds: TextDataset) -> tuple[list[torch.Tensor], torch.Tensor]:
        ids = [torch.as_tensor(x, dtype=torch.long) for x in tok.encode(ds.texts)]
        return ids, torch.tensor([labels.index(y) for y in ds.labels])

    def bag(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat(rows), torch.tensor([0] + [len(r) for r in rows[:-1]]).cumsum(0)

    words = torch.nn.EmbeddingBag(tok.vocab_size, len(labels), mode="mean")
    pairs = torch.nn.EmbeddingBag(buckets, len(labels), mode="mean")
    bias = torch.nn.Parameter(torch.zeros(len(labels)))
    for emb in (words, pairs):
        torch.nn.init.zeros_(emb.weight)

    def logits(rows: list[torch.Tensor]) -> torch.Tensor:
        pair_rows = [(r[:-1] * 1_000_003 + r[1:]) % buckets if len(r) > 1 else r for r in rows]
        return words(*bag(rows)) + pairs(*bag(pair_rows)) + bias

    (x_tr, y_tr), (x_te, y_te) = encode(train), encode(test)
    opt = torch.optim.Adam([words.weight, pairs.weight, bias], lr=lr)
    for epoch in range(epochs):
        perm = torch.randperm(len(x_tr))
        for s in range(0, len(perm), 128):
            idx = perm[s : s + 128]
            loss = F.cross_entropy(logits([x_tr[i] for i in idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = torch.cat([logits(x_te[s : s + 512]).argmax(1) for s in range(0, len(x_te), 512)])
        print(f"max length {max_length}, epoch {epoch + 1}: test accuracy {(pred == y_te).float().mean():.4f}")


def finetune_bf16(train: TextDataset, out: Path) -> None:
    sub = train.subset(list(range(0, len(train), 100)))
    for bf16 in (False, True):
        cfg = resolve_config("finetune", model={"source": "minilm"}, tokenizer={"max_length": 256, "long_text": "head-tail"},
                             train={"epochs": 1, "batch_size": 32, "lr": 5e-5, "bf16": bf16, "patience": 0})
        result = fit(cfg, sub, out / f"bf16_{bf16}", overwrite=True, progress=False)
        print(f"{'bf16' if bf16 else 'fp32'}: {result.train_samples_per_sec:.1f} training samples/s ({len(sub)} reviews)")


def memory(train: TextDataset, out: Path, trim_every: int, reviews: int) -> None:
    """Resident memory, step by step, while MiniLM fine-tunes on ``reviews`` IMDB reviews at 512
    tokens (the IMDB command's settings: bf16, no attention dropout, batches of 32). With
    ``trim_every`` > 0, glibc's ``malloc_trim(0)`` hands freed heap back to the system every that
    many steps on top of what training itself does (since the fifth session: every 20 steps on a CPU,
    with oneDNN's kernel cache capped at 16 shapes)."""
    import psutil

    from classiformer.runtime import release_free_memory

    process = psutil.Process()

    def rss_gb() -> float:
        return process.memory_info().rss / 1e9

    samples: list[float] = []

    def on_step(step: int) -> None:
        if trim_every and step % trim_every == 0:
            release_free_memory()
        samples.append(rss_gb())

    sub = train.subset(list(range(0, len(train), max(1, len(train) // reviews)))[:reviews])
    cfg = resolve_config("finetune", model={"source": "minilm", "attention_dropout": 0.0},
                         tokenizer={"max_length": 512, "long_text": "head-tail"},
                         train={"epochs": 1, "batch_size": 32, "lr": 5e-5, "bf16": True, "patience": 0})
    t = time.perf_counter()
    result = fit(cfg, sub, out / f"memory_trim{trim_every}", overwrite=True, progress=False, on_step=on_step)
    quarter = [samples[min(len(samples) - 1, int(q * len(samples)))] for q in (0.25, 0.5, 0.75)] + [samples[-1]]
    print(f"{len(sub)} reviews, {len(samples)} steps, trim every {trim_every or 'never'}: resident GB at 25/50/75/100% of "
          f"the steps {' / '.join(f'{x:.2f}' for x in quarter)}, peak {max(samples):.2f}; "
          f"{result.train_samples_per_sec:.1f} samples/s, {time.perf_counter() - t:.0f} s")


def ceiling(runs: list[str], test: TextDataset) -> None:
    """How far several fine-tuned runs of one checkpoint (other seeds or settings) get together:
    each one's test accuracy, the accuracy of averaging their probabilities (an ensemble, k times the
    cost) and of one model whose weights are their uniform average (a "model soup", Wortsman et al.
    2022: one model's cost). If even the ensemble stays below a target, the checkpoint and data, not
    one unlucky run, set the limit."""
    import numpy as np

    from classiformer import Classifier

    gold = np.array(test.labels)
    models = [Classifier.load(run) for run in runs]
    if any(clf.labels != models[0].labels for clf in models):
        raise SystemExit(f"the runs predict different label lists: {[clf.labels for clf in models]}")
    labels = np.array(models[0].labels)
    probs = []
    for run, clf in zip(runs, models, strict=True):
        probs.append(clf.predict_proba(test.texts))
        print(f"{run}: {np.mean(labels[probs[-1].argmax(1)] == gold):.4f}")
    print(f"ensemble of {len(runs)} (mean probability): {np.mean(labels[np.mean(probs, 0).argmax(1)] == gold):.4f}")
    states = [clf.model.state_dict() for clf in models]
    soup = {k: sum(state[k].float() for state in states) / len(states) if states[0][k].is_floating_point() else states[0][k]
            for k in states[0]}
    models[0].model.load_state_dict(soup)
    print(f"weight average of {len(runs)} (one model): {np.mean(np.array(models[0].predict(test.texts)) == gold):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("probe", choices=["deletion-speed", "cls-only", "attention-dropout", "ngram-linear", "finetune-bf16", "memory",
                                      "ceiling"])
    ap.add_argument("runs", nargs="*", help="ceiling: run folders fine-tuned on --set (same labels)")
    ap.add_argument("--set", default="sst2", choices=["ag_news", "sst2", "imdb"], help="ceiling: the test set")
    ap.add_argument("--trim-every", type=int, default=0, help="memory: malloc_trim every N steps (0: never)")
    ap.add_argument("--reviews", type=int, default=1600, help="memory: IMDB training reviews")
    ap.add_argument("--max-length", type=int, default=512, help="ngram-linear: words read per review")
    ap.add_argument("--out", type=Path, default=Path("/tmp/classiformer_probes"))
    args = ap.parse_intermixed_args()  # ceiling: run folders may come after --set
    torch.set_num_threads(2)
    print(header(), flush=True)
    torch.manual_seed(0)
    if args.probe == "ceiling":
        if len(args.runs) < 2:
            ap.error("ceiling needs at least two run folders")
        ceiling(args.runs, load_set(args.set, DATA)[1])
        return
    if args.probe == "cls-only":
        cls_only(load_set("sst2", DATA)[1])
        return
    train, test = load_set("imdb", DATA)
    if args.probe == "attention-dropout":
        attention_dropout(train)
    elif args.probe == "deletion-speed":
        deletion_speed(train, args.out / "deletion")
    elif args.probe == "ngram-linear":
        ngram_linear(train, test, args.max_length)
    elif args.probe == "memory":
        memory(train, args.out, args.trim_every, args.reviews)
    else:
        finetune_bf16(train, args.out)


if __name__ == "__main__":
    main()
