"""The lesson's own Keras transformer, run as a peer in the same benchmark run.

This is the model of ../shared/seed (the Keras example "Text classification with Transformer"):
TextVectorization (20k words, 256 tokens) inside the model, token + position embedding (32),
one transformer block (2 heads, key_dim 32, feed-forward 32, dropout 0.1), global average pooling,
dropout, Dense(20, relu), dropout, softmax; Adam, batch 128. Only the data source differs: texts and
labels come from JSON Lines files that bench/scratch.py writes, so both frameworks see the same split.

TensorFlow does not share an environment with torch here; bench/scratch.py runs this file with the
interpreter of ``.venv-keras`` (made by ``bash bench/setup_keras.sh``):

    .venv-keras/bin/python bench/keras_lesson.py TRAIN.jsonl TEST.jsonl --epochs 3 --out keras.json

It prints one line per epoch and writes JSON: test accuracy after every epoch, training samples/s
(``model.fit`` time, vectorization included, as the lesson runs it) and prediction docs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


class TokenAndPositionEmbedding(keras.layers.Layer):
    def __init__(self, maxlen: int, vocab_size: int, embed_dim: int) -> None:
        super().__init__()
        self.token_emb = keras.layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = keras.layers.Embedding(input_dim=maxlen, output_dim=embed_dim)
        self.maxlen = maxlen

    def call(self, x):  # type: ignore[no-untyped-def]
        positions = self.pos_emb(tf.range(start=0, limit=self.maxlen, delta=1))
        return self.token_emb(x) + positions


class TransformerBlock(keras.layers.Layer):
    def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, rate: float = 0.1) -> None:
        super().__init__()
        self.att = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential(
            [keras.layers.Dense(ff_dim, activation="relu"), keras.layers.Dense(embed_dim)]
        )
        self.layernorm1 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = keras.layers.Dropout(rate)
        self.dropout2 = keras.layers.Dropout(rate)

    def call(self, inputs, training=False):  # type: ignore[no-untyped-def]
        attn = self.dropout1(self.att(inputs, inputs), training=training)
        out1 = self.layernorm1(inputs + attn)
        ffn = self.dropout2(self.ffn(out1), training=training)
        return self.layernorm2(out1 + ffn)


def read_jsonl(path: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(row["label"])
    return texts, labels


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("train", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    train_texts, train_labels = read_jsonl(args.train)
    test_texts, test_labels = read_jsonl(args.test)
    names = sorted(set(train_labels))
    index = {n: i for i, n in enumerate(names)}
    y_train = np.array([index[label] for label in train_labels])
    y_test = np.array([index[label] for label in test_labels])
    x_train = tf.constant(train_texts)[:, None]  # (N, 1) strings, as the lesson's input_shape=(1,)
    x_test = tf.constant(test_texts)[:, None]

    vectorizer = keras.layers.TextVectorization(max_tokens=20_000, output_sequence_length=256)
    t0 = time.perf_counter()
    vectorizer.adapt(tf.constant(train_texts))
    adapt_s = time.perf_counter() - t0
    model = keras.Sequential(
        [
            keras.Input(shape=(1,), dtype="string"),
            vectorizer,
            TokenAndPositionEmbedding(256, 20_000, 32),
            TransformerBlock(32, 2, 32),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(20, activation="relu"),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(len(names), activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", metrics=["acc"], optimizer="adam")

    epochs = []
    train_s = 0.0
    for epoch in range(args.epochs):
        order = np.random.default_rng(args.seed + epoch).permutation(len(y_train))
        t0 = time.perf_counter()
        data = tf.data.Dataset.from_tensor_slices((tf.gather(x_train, order), y_train[order])).batch(
            args.batch_size
        )
        model.fit(data, epochs=1, verbose=0)
        fit_s = time.perf_counter() - t0
        train_s += fit_s
        t0 = time.perf_counter()
        probs = model.predict(tf.data.Dataset.from_tensor_slices(x_test).batch(args.batch_size), verbose=0)
        pred_s = time.perf_counter() - t0
        acc = float((probs.argmax(1) == y_test).mean())
        epochs.append(
            {
                "epoch": epoch + 1,
                "accuracy": acc,
                "train_samples_per_sec": len(y_train) / fit_s,
                "predict_docs_per_sec": len(y_test) / pred_s,
            }
        )
        print(
            f"keras epoch {epoch + 1}: accuracy {acc:.4f}, {len(y_train) / fit_s:,.0f} samples/s", flush=True
        )
    result = {
        "epochs": epochs,
        "accuracy": epochs[-1]["accuracy"],
        "train_samples_per_sec": len(y_train) * args.epochs / train_s,
        "predict_docs_per_sec": epochs[-1]["predict_docs_per_sec"],
        "train_seconds": train_s + adapt_s,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
