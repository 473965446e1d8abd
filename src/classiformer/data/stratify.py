"""Train/validation splits of multi-label data by iterative stratification (Sechidis, Tsoumakas &
Vlahavas, 2011, "On the Stratification of Multi-label Data", ECML PKDD, Algorithm 1).

A random split of multi-label data easily leaves a rare label entirely on one side: the
validation split then cannot tune that label's threshold, or training never sees it. Iterative
stratification takes the labels rarest first, and hands each example of the current label to the
part that still lacks the most examples of that label (ties: the part that lacks the most
examples overall, then a seeded coin). Rare labels are thus placed while every part still wants
them, and frequent labels, placed last, even out what is left.

One deliberate change from the paper: a label with at least two examples wants at least one of
them in each part (the paper's desired counts are ``fraction * count``, which for a label with two
examples and a 10% validation split sends both to training). This is the same rule as the
single-label :func:`classiformer.data.stratified_split`; it can make the validation part a little
larger than ``fraction`` when very many labels are that rare. Rows with no labels are placed last,
to whichever part is furthest below its desired size.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np


def iterative_split(
    label_sets: Sequence[Sequence[str]], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Split examples (``label_sets[i]`` holds the labels of example i, possibly none) into sorted
    ``(train_indices, validation_indices)``, the validation part about ``fraction`` of the rows.

    Deterministic for a given ``seed``."""
    n = len(label_sets)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")
    if n < 2:
        raise ValueError(f"cannot split {n} example(s) into a training and a validation part")
    rng = random.Random(seed)
    sets = [sorted(set(s)) for s in label_sets]  # duplicates within a row count once
    order = list(range(n))
    rng.shuffle(order)  # the order in which a label's examples are handed out
    examples: dict[str, list[int]] = {}
    for i in order:
        for label in sets[i]:
            examples.setdefault(label, []).append(i)

    ratios = (1.0 - fraction, fraction)  # part 0: training, part 1: validation
    want_total = [r * n for r in ratios]
    want: dict[str, list[float]] = {}
    for label, idx in examples.items():
        in_val = fraction * len(idx)
        if len(idx) >= 2:
            in_val = min(max(in_val, 1.0), len(idx) - 1.0)
        want[label] = [len(idx) - in_val, in_val]

    part = [-1] * n
    remaining = {label: len(idx) for label, idx in examples.items()}
    while remaining:
        # The label with the fewest examples still to place (ties: the first in sorted order, so
        # the result does not depend on hash order).
        label = min(sorted(remaining), key=lambda lb: remaining[lb])
        for i in examples[label]:
            if part[i] >= 0:
                continue
            w = want[label]
            if w[0] != w[1]:
                j = 0 if w[0] > w[1] else 1
            elif want_total[0] != want_total[1]:
                j = 0 if want_total[0] > want_total[1] else 1
            else:
                j = rng.randrange(2)
            part[i] = j
            want_total[j] -= 1
            for other in sets[i]:
                want[other][j] -= 1
                remaining[other] -= 1
        for lb in [lb for lb, left in remaining.items() if left == 0]:
            del remaining[lb]

    for i in order:  # rows without labels
        if part[i] < 0:
            j = 0 if want_total[0] >= want_total[1] else 1
            part[i] = j
            want_total[j] -= 1
    train = [i for i in range(n) if part[i] == 0]
    val = [i for i in range(n) if part[i] == 1]
    if not train or not val:
        raise ValueError(f"{n} examples are too few to carve a validation split of {fraction:.0%}")
    return train, val


def label_distribution_error(label_sets: Sequence[Sequence[str]], parts: Sequence[Sequence[int]]) -> float:
    """How far the parts' label proportions stray from the whole set's: the mean, over labels and
    parts, of |share of the part's examples carrying the label - share in the whole set|.

    The paper's LD measure compares positive/negative ratios instead; shares are used here
    because a ratio is undefined for a label that every example of a part carries."""
    all_labels = sorted({lb for s in label_sets for lb in s})
    if not all_labels:
        return 0.0
    column = {lb: k for k, lb in enumerate(all_labels)}
    y = np.zeros((len(label_sets), len(all_labels)), dtype=np.float64)
    for i, s in enumerate(label_sets):
        for lb in s:
            y[i, column[lb]] = 1.0
    overall = y.mean(0)
    errors = [np.abs(y[list(p)].mean(0) - overall).mean() for p in parts if len(p)]
    return float(np.mean(errors))
