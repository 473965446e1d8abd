"""Pretrained encoders (minilm) against their peers, in the same run, on the same model and data.

- fine-tuning samples/s: classiformer's Trainer vs ``transformers.Trainer`` (DataCollatorWithPadding,
  same hyperparameters, same training subset, 1 epoch each);
- inference docs/s on the fine-tuned model: ``Classifier`` vs ``transformers.pipeline(
  "text-classification")`` at its default and at batch_size=32, with label agreement (fp32 and bf16);
- accuracy: fine-tuned and frozen MiniLM vs TF-IDF + logistic regression;
- long texts on IMDB: truncate vs head-tail vs chunks on one model;
- achieved GFLOP/s vs a measured matrix-product peak.

Everything runs on bounded subsets (sizes printed and stored) so the whole script fits in about
ten minutes of a 2-core CPU. Usage: ``python bench/pretrained.py [--data ../shared/data] [--quick]``.
Prints a table and writes bench/results/pretrained.json (or ``--json PATH``).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hardware import header, machine

from classiformer import Classifier, TextDataset, evaluate, fit, resolve_config
from classiformer.hub import resolve_source

RESULTS = Path(__file__).parent / "results"
AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


def load_jsonl(path: Path, limit: int | None, seed: int = 0) -> TextDataset:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    if limit is not None and limit < len(rows):
        rng = np.random.default_rng(seed)
        rows = [rows[i] for i in sorted(rng.choice(len(rows), limit, replace=False))]
    return TextDataset([r["text"] for r in rows], [str(r["label"]) for r in rows], source=f"{path} ({len(rows)} rows)")


def load_ag_news(root: Path) -> tuple[TextDataset, TextDataset]:
    """The foundation benchmark's split of the 7,600 canonical rows: index % 5 == 0 is evaluation."""
    with open(root / "ag_news" / "test.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    texts = [f"{r[1]} {r[2]}" for r in rows]
    labels = [AG_LABELS[r[0]] for r in rows]
    tr = [i for i in range(len(rows)) if i % 5]
    ev = [i for i in range(len(rows)) if i % 5 == 0]
    pick = lambda idx, name: TextDataset([texts[i] for i in idx], [labels[i] for i in idx], source=f"ag_news {name}")  # noqa: E731
    return pick(tr, "train"), pick(ev, "eval")


def tfidf_lr(train: TextDataset, test: TextDataset) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(vec.fit_transform(train.texts), train.labels)
    return float(np.mean(clf.predict(vec.transform(test.texts)) == np.array(test.labels)))


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def forward_flops(model: torch.nn.Module, lengths: np.ndarray, cls_only: bool = False) -> float:
    """Forward FLOPs for sequences of ``lengths``: 2 per non-embedding weight per token plus the
    attention products (QK^T and AV: 4 * T^2 * hidden per layer). With ``cls_only`` (our classifier
    computes only [CLS] in the last layer: ``PretrainedClassifier._cls_only_ok``), that layer's query, output projection and
    feed-forward run on one token per sequence and its attention on one query row."""
    cfg = model.hf.config  # type: ignore[union-attr]
    emb = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    dense = sum(p.numel() for p in model.parameters()) - emb
    tokens = float(lengths.sum())
    lens = lengths.astype(np.float64)
    attn = 4.0 * float((lens**2).sum()) * cfg.hidden_size * cfg.num_hidden_layers
    flops = 2.0 * dense * tokens + attn
    if cls_only:
        h, inner = cfg.hidden_size, cfg.intermediate_size
        skipped_per_token = 2.0 * (2 * h * h + 2 * h * inner)  # query, output projection, feed-forward
        flops -= skipped_per_token * (tokens - len(lens)) + 4.0 * h * float((lens**2 - lens).sum())
    return flops


def hf_trainer_run(
    source: str, train: TextDataset, test: TextDataset, labels: list[str], args: argparse.Namespace, out: Path
) -> tuple[float, float]:
    """transformers.Trainer on the same data and hyperparameters; returns its training samples/s and
    the test accuracy of the model it trained (so that speed is not bought with accuracy)."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    tok = AutoTokenizer.from_pretrained(source)
    index = {lbl: i for i, lbl in enumerate(labels)}
    enc = tok(train.texts, truncation=True, max_length=args.max_length)
    rows = [{"input_ids": ids, "attention_mask": m, "labels": index[y]}
            for ids, m, y in zip(enc["input_ids"], enc["attention_mask"], train.labels, strict=True)]
    torch.manual_seed(args.seed)
    extra = {} if args.attention_dropout is None else {"attention_probs_dropout_prob": args.attention_dropout}
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(labels), attn_implementation="sdpa", **extra
    )
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, learning_rate=args.lr,
        weight_decay=0.01, warmup_steps=0.1, lr_scheduler_type="linear", max_grad_norm=1.0,
        num_train_epochs=1, save_strategy="no", eval_strategy="no", report_to=[], logging_strategy="no",
        seed=args.seed, use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=rows, data_collator=DataCollatorWithPadding(tok))
    t = time.perf_counter()
    trainer.train()
    speed = len(rows) / (time.perf_counter() - t)
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(test), 64):
            batch = tok(test.texts[start : start + 64], truncation=True, max_length=args.max_length,
                        padding=True, return_tensors="pt")
            pred = model(**batch).logits.argmax(-1).tolist()
            correct += sum(labels[i] == y for i, y in zip(pred, test.labels[start : start + 64], strict=True))
    return speed, correct / len(test)


def inference_race(clf: Classifier, texts: list[str], run_best: Path, reps: int) -> dict[str, Any]:
    from transformers import pipeline

    out: dict[str, Any] = {}

    def timed(fn):  # best of ``reps``
        best, result = float("inf"), None
        for _ in range(reps):
            t = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - t)
        return len(texts) / best, result

    out["ours_fp32_docs_per_sec"], ours = timed(lambda: clf.predict(texts))
    # bf16 is a property of the loaded model (its weights are converted once), so load it again.
    clf_bf16 = Classifier.load(run_best, batch_size=clf.batch_size, bf16=True)
    out["ours_bf16_docs_per_sec"], ours_bf16 = timed(lambda: clf_bf16.predict(texts))
    pipe = pipeline("text-classification", model=str(run_best), tokenizer=str(run_best / "tokenizer" / "hf"), device=-1)
    kw = {"truncation": True, "max_length": clf.tokenizer.max_length}
    out["pipeline_default_docs_per_sec"], p_def = timed(lambda: [r["label"] for r in pipe(texts, **kw)])
    out["pipeline_bs32_docs_per_sec"], p_32 = timed(lambda: [r["label"] for r in pipe(texts, batch_size=32, **kw)])
    best_pipe = max(out["pipeline_default_docs_per_sec"], out["pipeline_bs32_docs_per_sec"])
    out["speedup_vs_best_pipeline_fp32"] = out["ours_fp32_docs_per_sec"] / best_pipe
    out["speedup_vs_best_pipeline_bf16"] = out["ours_bf16_docs_per_sec"] / best_pipe
    out["label_agreement_fp32_vs_pipeline"] = float(np.mean(np.array(ours) == np.array(p_def)))
    out["label_agreement_pipeline_bs32_vs_default"] = float(np.mean(np.array(p_32) == np.array(p_def)))
    out["label_agreement_bf16_vs_fp32"] = float(np.mean(np.array(ours_bf16) == np.array(ours)))
    # agreement means little when a barely trained model predicts one label everywhere
    out["majority_label_share"] = max(ours.count(lbl) for lbl in set(ours)) / len(ours)
    return out


def print_table(res: dict[str, Any]) -> None:
    """Ours against the peer of each measurement that ran."""
    rows = [("SST-2 fine-tuning samples/s", res["finetune_samples_per_sec_ours"],
             res.get("finetune_samples_per_sec_hf_trainer"), "transformers.Trainer"),
            ("SST-2 accuracy, fine-tuned", res["sst2_finetuned_accuracy"], res.get("sst2_hf_trainer_accuracy"),
             "transformers.Trainer"),
            ("SST-2 accuracy, same subset", res["sst2_finetuned_accuracy"], res["sst2_tfidf_lr_accuracy_same_subset"],
             "TF-IDF + LR")]
    if "inference" in res:
        inf = res["inference"]
        best = max(inf["pipeline_default_docs_per_sec"], inf["pipeline_bs32_docs_per_sec"])
        rows += [("inference docs/s, fp32", inf["ours_fp32_docs_per_sec"], best, "best pipeline setting"),
                 ("inference docs/s, bf16", inf["ours_bf16_docs_per_sec"], best, "best pipeline setting")]
    for name in ("ag_news", "sst2"):
        if f"{name}_frozen" in res:
            r = res[f"{name}_frozen"]
            rows.append((f"{name} accuracy, frozen", r["accuracy"], r["tfidf_lr_accuracy"], "TF-IDF + LR"))
    for policy in ("truncate", "head-tail", "chunks"):
        if policy in res.get("imdb_frozen", {}):
            r = res["imdb_frozen"]
            rows.append((f"IMDB accuracy, frozen, {policy}", r[policy]["accuracy"], r["tfidf_lr_accuracy"], "TF-IDF + LR"))
    print(f"\n{'measure':<34} {'classiformer':>12} {'peer':>10} {'ratio':>7}  peer")
    for label, ours, peer, peer_name in rows:
        if peer is None:
            continue
        fmt = ".4f" if ours <= 1 else ".1f"
        print(f"{label:<34} {ours:>12{fmt}} {peer:>10{fmt}} {ours / peer:>6.2f}x  {peer_name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--finetune-train", type=int, default=2000, help="SST-2 training examples for fine-tuning")
    ap.add_argument("--frozen-train", type=int, default=6000, help="SST-2 training examples for the frozen model")
    ap.add_argument("--imdb-train", type=int, default=1000)
    ap.add_argument("--imdb-test", type=int, default=300)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--attention-dropout", type=float, default=None,
                    help="fine-tuning, ours and Trainer's alike (default: the checkpoint's own, 0.1 for MiniLM)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--reps", type=int, default=2, help="timing repetitions (best is kept)")
    ap.add_argument("--json", default=None, help="results file (default: bench/results/pretrained.json)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["hf-trainer", "frozen", "imdb", "pipeline"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    root = Path(args.data)
    source = resolve_source(args.model)
    res: dict[str, Any] = {
        "machine": machine(),
        "torch": torch.__version__, "args": vars(args), "date": time.strftime("%Y-%m-%d"),
    }
    print(header(res["machine"]), flush=True)
    res["matmul_peak_gflops_fp32"] = matmul_peak(torch.float32)
    res["matmul_peak_gflops_bf16"] = matmul_peak(torch.bfloat16)
    print(f"matmul peak: fp32 {res['matmul_peak_gflops_fp32']:.0f} GFLOP/s, bf16 {res['matmul_peak_gflops_bf16']:.0f} GFLOP/s")
    tmp = Path(tempfile.mkdtemp(prefix="bench_pretrained_"))
    tok_cfg = {"max_length": args.max_length}

    # -- SST-2: fine-tune on a subset, 1 epoch -------------------------------------------------
    sst_train = load_jsonl(root / "sst2" / "train.jsonl.gz", args.finetune_train, args.seed)
    sst_test = load_jsonl(root / "sst2" / "test.jsonl.gz", None)
    sst_val = load_jsonl(root / "sst2" / "train.jsonl.gz", 200, args.seed + 1)
    train_cfg = {"epochs": 1, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "patience": 0}
    ft_model = {"source": args.model, "attention_dropout": args.attention_dropout}
    cfg = resolve_config("finetune", model=ft_model, tokenizer=tok_cfg, train=train_cfg)
    t = time.perf_counter()
    result = fit(cfg, sst_train, tmp / "sst2_finetune", validation=sst_val, progress=False)
    res["finetune_wall_s"] = time.perf_counter() - t
    res["finetune_samples_per_sec_ours"] = result.train_samples_per_sec
    clf = Classifier.load(result.best_dir, batch_size=64)
    res["sst2_finetuned_accuracy"] = evaluate(clf, sst_test, progress=False)["accuracy"]
    lengths = np.array([len(x) for x in clf.tokenizer.encode(sst_train.texts)])
    res["finetune_gflops_ours"] = 3 * forward_flops(clf.model, lengths, clf.model._cls_only_ok()) * result.train_samples_per_sec / len(lengths) / 1e9
    print(f"fine-tune SST-2 ({len(sst_train)} examples, 1 epoch): {result.train_samples_per_sec:.1f} samples/s, "
          f"test accuracy {res['sst2_finetuned_accuracy']:.4f}")
    if "hf-trainer" not in args.skip:
        speed, acc = hf_trainer_run(source, sst_train, sst_test, clf.labels, args, tmp / "hf_trainer")
        res["finetune_samples_per_sec_hf_trainer"], res["sst2_hf_trainer_accuracy"] = speed, acc
        res["finetune_speedup"] = res["finetune_samples_per_sec_ours"] / res["finetune_samples_per_sec_hf_trainer"]
        print(f"transformers.Trainer: {res['finetune_samples_per_sec_hf_trainer']:.1f} samples/s, test accuracy {acc:.4f} "
              f"(ours {res['finetune_speedup']:.2f}x)")

    # -- inference on SST-2 test with the fine-tuned model --------------------------------------
    if "pipeline" not in args.skip:
        res["inference"] = inference_race(clf, sst_test.texts, result.best_dir, args.reps)
        test_lengths = np.array([len(x) for x in clf.tokenizer.encode(sst_test.texts)])
        per_doc = forward_flops(clf.model, test_lengths, clf.model._cls_only_ok()) / len(test_lengths)
        res["inference"]["gflops_ours_fp32"] = per_doc * res["inference"]["ours_fp32_docs_per_sec"] / 1e9
        res["inference"]["gflops_ours_bf16"] = per_doc * res["inference"]["ours_bf16_docs_per_sec"] / 1e9
        print("inference:", json.dumps({k: round(v, 3) for k, v in res["inference"].items()}))
    res["sst2_tfidf_lr_accuracy_same_subset"] = tfidf_lr(sst_train, sst_test)

    # -- frozen: AG News (foundation split) and SST-2 ------------------------------------------
    if "frozen" not in args.skip:
        frozen_train = {"epochs": 8, "batch_size": 32, "lr": 2e-3, "seed": args.seed, "patience": 3}
        ag_train, ag_eval = load_ag_news(root)
        for name, tr, te in [("ag_news", ag_train, ag_eval),
                             ("sst2", load_jsonl(root / "sst2" / "train.jsonl.gz", args.frozen_train, args.seed), sst_test)]:
            fcfg = resolve_config("frozen", model={"source": args.model, "pooling": "mean"}, tokenizer=tok_cfg, train=frozen_train)
            t = time.perf_counter()
            r = fit(fcfg, tr, tmp / f"{name}_frozen", progress=False)
            acc = evaluate(Classifier.load(r.best_dir, batch_size=64), te, progress=False)["accuracy"]
            res[f"{name}_frozen"] = {"train_examples": len(tr), "accuracy": acc, "epochs": len(r.history),
                                     "wall_s": time.perf_counter() - t, "tfidf_lr_accuracy": tfidf_lr(tr, te)}
            print(f"frozen {name}: {res[f'{name}_frozen']}")

    # -- IMDB: long-text policies on one frozen model --------------------------------------------
    if "imdb" not in args.skip:
        itr = load_jsonl(root / "imdb" / "train.jsonl.gz", args.imdb_train, args.seed)
        ite = load_jsonl(root / "imdb" / "test.jsonl.gz", args.imdb_test, args.seed)
        icfg = resolve_config("frozen", model={"source": args.model, "pooling": "mean"}, tokenizer={"max_length": 256},
                              train={"epochs": 8, "batch_size": 32, "lr": 2e-3, "seed": args.seed, "patience": 3})
        r = fit(icfg, itr, tmp / "imdb_frozen", progress=False)
        res["imdb_frozen"] = {"train_examples": len(itr), "test_examples": len(ite), "max_length": 256,
                              "tfidf_lr_accuracy": tfidf_lr(itr, ite)}
        for policy in ("truncate", "head-tail", "chunks"):
            t = time.perf_counter()
            acc = evaluate(Classifier.load(r.best_dir, batch_size=32, long_text=policy), ite, progress=False)["accuracy"]
            res["imdb_frozen"][policy] = {"accuracy": acc, "eval_s": time.perf_counter() - t}
        print(f"imdb frozen: {res['imdb_frozen']}")

    print_table(res)
    out = Path(args.json) if args.json else RESULTS / "pretrained.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
