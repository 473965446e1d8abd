"""A fine-tuned multi-label encoder: Hugging Face's problem_type, from_pretrained and pipeline(sigmoid) agree with us."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classiformer import Classifier, fit
from classiformer.data import TextDataset
from classiformer.inference import sigmoid

from .test_multilabel_training import NAMES, multilabel_texts
from .test_pretrained import config_for, tiny_bert  # noqa: F401  (the session fixture)


def test_from_pretrained_and_pipeline_reproduce_our_scores(tiny_bert: Path, tmp_path: Path) -> None:  # noqa: F811
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    texts, sets = multilabel_texts(200, seed=0)
    result = fit(config_for(tiny_bert, "finetune", epochs=4), TextDataset(texts, None, label_sets=sets),
                 tmp_path / "run", progress=False)
    clf = Classifier.load(result.best_dir)
    assert clf.multi_label and clf.labels == NAMES
    hf = AutoModelForSequenceClassification.from_pretrained(str(result.best_dir)).eval()
    assert hf.config.problem_type == "multi_label_classification"
    assert [hf.config.id2label[i] for i in range(3)] == NAMES
    probe = ["goal team stock market", "the a of today", "chip robot code"]
    ours = sigmoid(clf.logits(probe))  # raw sigmoid: the pipeline knows nothing of our temperatures
    pipe = pipeline("text-classification", model=hf, tokenizer=AutoTokenizer.from_pretrained(str(result.best_dir)),
                    top_k=None, function_to_apply="sigmoid")
    theirs = np.array([[next(d["score"] for d in row if d["label"] == lb) for lb in NAMES] for row in pipe(probe)])
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    assert not np.allclose(theirs.sum(1), 1.0)  # independent sigmoids, not a softmax
