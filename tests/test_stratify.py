"""Iterative stratification of multi-label data (Sechidis et al., 2011)."""

from __future__ import annotations

import random

import pytest

from classiformer.data.stratify import iterative_split, label_distribution_error


def random_label_sets(n: int, seed: int, labels: int = 12, empty: float = 0.1) -> list[list[str]]:
    """Label sets with a skewed (Zipf-like) label frequency, some rows with no label at all."""
    rng = random.Random(seed)
    names = [f"l{k:02d}" for k in range(labels)]
    weights = [1.0 / (k + 1) ** 1.2 for k in range(labels)]
    out: list[list[str]] = []
    for _ in range(n):
        if rng.random() < empty:
            out.append([])
            continue
        k = 1 + (rng.random() < 0.4) + (rng.random() < 0.15)
        out.append(sorted(set(rng.choices(names, weights, k=k))))
    return out


def sides(label_sets: list[list[str]], idx: list[int]) -> set[str]:
    return {lb for i in idx for lb in label_sets[i]}


def test_split_is_a_partition_with_the_asked_fraction() -> None:
    ys = random_label_sets(1000, seed=0)
    train, val = iterative_split(ys, 0.2, seed=3)
    assert sorted(train + val) == list(range(1000))
    assert train == sorted(train) and val == sorted(val)
    assert abs(len(val) - 200) <= 5


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_fraction_is_respected(fraction: float) -> None:
    ys = random_label_sets(800, seed=1)
    _, val = iterative_split(ys, fraction, seed=0)
    assert abs(len(val) - fraction * 800) <= 0.01 * 800


def test_rare_labels_land_on_both_sides() -> None:
    # 500 rows of frequent labels, plus labels with only 2, 3 and 4 examples (some sharing rows
    # with frequent labels). A 10% split would by the paper's counts put all of them in training.
    rng = random.Random(0)
    ys = [[rng.choice(["a", "b", "c"])] for _ in range(500)]
    for label, count in (("rare2", 2), ("rare3", 3), ("rare4", 4)):
        for i in rng.sample(range(500), count):
            ys[i].append(label)
    train, val = iterative_split(ys, 0.1, seed=0)
    for label in ("rare2", "rare3", "rare4", "a", "b", "c"):
        assert label in sides(ys, train) and label in sides(ys, val), label
    # The whole validation part stays near its fraction despite the rare labels' minimum.
    assert abs(len(val) - 50) <= 3


def test_a_label_seen_once_goes_to_training() -> None:
    ys = [["a"], ["a"], ["b"], ["b"], ["a", "once"], ["b"], ["a"], ["b"]]
    train, _ = iterative_split(ys, 0.25, seed=0)
    assert 4 in train


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    ys = random_label_sets(300, seed=2)
    assert iterative_split(ys, 0.2, seed=7) == iterative_split(ys, 0.2, seed=7)
    assert iterative_split(ys, 0.2, seed=7) != iterative_split(ys, 0.2, seed=8)
    # Labels given in another order within a row mean the same thing.
    shuffled = [list(reversed(s)) for s in ys]
    assert iterative_split(shuffled, 0.2, seed=7) == iterative_split(ys, 0.2, seed=7)


def test_rows_without_labels_are_split_too() -> None:
    ys: list[list[str]] = [[] for _ in range(100)] + [["x"]] * 20 + [["y"]] * 20
    train, val = iterative_split(ys, 0.25, seed=0)
    assert abs(len(val) - 35) <= 1
    empty_val = sum(1 for i in val if not ys[i])
    assert 20 <= empty_val <= 30  # no-label rows fill the validation part up to its size
    # Labelled rows keep their own stratification: a quarter of each label in validation.
    assert sum(1 for i in val if ys[i] == ["x"]) == 5 and sum(1 for i in val if ys[i] == ["y"]) == 5
    # All rows unlabelled: still a plain split by size.
    train, val = iterative_split([[] for _ in range(40)], 0.25, seed=0)
    assert len(val) == 10 and len(train) == 30


def test_lower_label_distribution_error_than_a_random_split() -> None:
    wins = 0
    for seed in range(5):
        ys = random_label_sets(600, seed=10 + seed, labels=20)
        train, val = iterative_split(ys, 0.2, seed=seed)
        strat = label_distribution_error(ys, [train, val])
        order = list(range(len(ys)))
        random.Random(seed).shuffle(order)
        rand = label_distribution_error(ys, [sorted(order[120:]), sorted(order[:120])])
        wins += strat < rand
        assert strat < 0.5 * rand, (seed, strat, rand)
    assert wins == 5


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        iterative_split([["a"], ["b"]], 1.0, seed=0)
    with pytest.raises(ValueError, match="cannot split 1"):
        iterative_split([["a"]], 0.5, seed=0)
