"""What the distributed tests run in each process that torchrun starts (not a test module itself):
``python -m torch.distributed.run --nproc-per-node N tests/ddp_worker.py MODE OUT``."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classiformer import distributed
from classiformer.checkpoint import CheckpointMeta, load_trainer_state
from classiformer.config import TrainConfig, resolve_config
from classiformer.data.batching import EncodedDataset
from classiformer.models import build_model
from classiformer.tokenizers import Tokenizer, train_tokenizer
from classiformer.training import Trainer, TrainingInterrupted, encode, fit

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_texts  # noqa: E402

GRAD_EXAMPLES, GRAD_BATCH = 13, 7  # 2 ranks: one step over batches of 7 and 6 examples
INTERRUPT_AT = 3  # optimizer steps


def tiny_model(seed: int = 5) -> tuple[torch.nn.Module, Tokenizer, CheckpointMeta, TrainConfig, EncodedDataset]:
    """A tiny transformer without dropout and the toy examples it trains on, the same in every process."""
    data = make_texts(GRAD_EXAMPLES, seed=3)
    cfg = resolve_config("tiny", train={"batch_size": GRAD_BATCH, "epochs": 1, "lr": 1e-3, "clip_norm": 0.0,
                                        "schedule": "constant", "seed": seed})
    tokenizer = train_tokenizer(cfg.tokenizer, data.texts)
    labels = data.label_names()
    cfg.model.vocab_size, cfg.model.max_length, cfg.model.pad_id = tokenizer.vocab_size, tokenizer.max_length, tokenizer.pad_id
    cfg.model.num_labels = len(labels)
    torch.manual_seed(seed)
    model = build_model(cfg.family, cfg.model)
    meta = CheckpointMeta(family=cfg.family, model=cfg.to_dict()["model"], labels=labels, train=cfg.to_dict()["train"],
                          preset=cfg.preset)
    return model, tokenizer, meta, cfg.train, encode(tokenizer, data, labels)


def frozen_model(bert: Path) -> tuple[torch.nn.Module, Tokenizer, CheckpointMeta, TrainConfig, EncodedDataset]:
    """A frozen tiny BERT (tests/test_pretrained.py's ``tiny_bert`` folder) and 29 toy examples."""
    from classiformer.models import FAMILIES

    data = make_texts(29, seed=4)
    config = resolve_config("frozen", model={"source": str(bert), "dropout": 0.0}, tokenizer={"max_length": 24},
                            train={"eval_batch_size": 4})
    labels = data.label_names()
    config.model.num_labels = len(labels)
    torch.manual_seed(0)
    model, tokenizer = FAMILIES[config.family].from_source(config.model, config.tokenizer)  # type: ignore[attr-defined]
    meta = CheckpointMeta(family=config.family, model=config.to_dict()["model"], labels=labels,
                          train=config.to_dict()["train"], preset=config.preset)
    return model, tokenizer, meta, config.train, encode(tokenizer, data, labels)


def shares(out: Path, bert: Path) -> None:
    """Rank 0 saves what the ranks computed in shares and gathered: validation metrics of the tiny
    transformer (batches of 3: 5 batches, 3 on rank 0 and 2 on rank 1) and a frozen encoder's
    feature cache (8 batches of 4)."""
    model, tokenizer, meta, cfg, data = tiny_model()
    cfg.eval_batch_size = 3
    metrics = Trainer(model, tokenizer, meta, cfg, out / "run", torch.device("cpu"), progress=False).validate(data)
    fmodel, ftok, fmeta, fcfg, fdata = frozen_model(bert)
    trainer = Trainer(fmodel, ftok, fmeta, fcfg, out / "frozen", torch.device("cpu"), progress=False)
    fmodel.prepare_feature_cache("train", len(fdata), None)
    trainer._fill_feature_cache(fdata, "train", torch.get_rng_state())
    cache = fmodel.feature_cache("train")
    if distributed.is_main():
        torch.save({"metrics": metrics, "feats": cache.feats, "lens": cache.lens}, out / "shares.pt")


def grads(out: Path) -> None:
    """Rank 0 saves the gradients of the first optimizer step, as the optimizer gets them."""
    model, tokenizer, meta, cfg, data = tiny_model()
    trainer = Trainer(model, tokenizer, meta, cfg, out / "run", torch.device("cpu"), progress=False)
    seen: list[dict[str, torch.Tensor]] = []

    def record(*args: Any) -> None:
        seen.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})

    trainer.optimizer.register_step_pre_hook(record)
    trainer.train(data, data)
    if distributed.is_main():
        torch.save({"steps": len(seen), "grads": seen[0]}, out / "grads.pt")


def test_set(out: Path) -> None:
    """Every rank evaluates the checkpoint in ``out/model`` on the toy examples with ``shared``;
    rank 0 saves the report and the rows each rank computed."""
    from classiformer.evaluate import evaluate
    from classiformer.predict import Classifier

    computed: list[int] = []
    gather = distributed.gather_rows

    def counting(part: np.ndarray) -> np.ndarray:
        computed.append(int((~np.isnan(part).all(axis=1)).sum()))
        return gather(part)

    distributed.gather_rows = counting  # type: ignore[assignment]
    report = evaluate(Classifier.load(out / "model", batch_size=4), make_texts(GRAD_EXAMPLES * 3, seed=7),
                      progress=False, shared=True)
    rows = distributed.all_gather_object(computed)
    if distributed.is_main():
        report.pop("eval_docs_per_sec")
        (out / "test_set.json").write_text(json.dumps({"report": report, "rows": rows}))


def interrupt(out: Path) -> None:
    """A 2-epoch run stopped (on every rank) after optimizer step INTERRUPT_AT, mid-epoch."""
    def stop(step: int) -> None:
        if step == INTERRUPT_AT:
            raise KeyboardInterrupt

    cfg = resolve_config("tiny", train={"batch_size": 16, "epochs": 2, "lr": 0.02})
    with contextlib.suppress(TrainingInterrupted):
        fit(cfg, make_texts(200, seed=1), out / "run", validation=make_texts(30, seed=2), progress=False, on_step=stop)


def resume(out: Path) -> None:
    fit(None, make_texts(200, seed=1), out / "run", validation=make_texts(30, seed=2), resume=True, progress=False)
    if distributed.is_main():
        progress = load_trainer_state(out / "run" / "last")["progress"]
        (out / "resumed.json").write_text(json.dumps(progress))


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    np.seterr(all="ignore")
    with distributed.process_group("cpu"):
        if mode == "shares":
            shares(folder, Path(sys.argv[3]))
        else:
            {"grads": grads, "interrupt": interrupt, "resume": resume, "test_set": test_set}[mode](folder)
    distributed.leave_worker(0)  # as the classiformer program leaves (distributed.py's docstring)
