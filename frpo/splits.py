"""The two splits of every task, whatever world serves it: ``train`` and ``heldout``.

The toy world draws its own (:mod:`frpo.toyworld.tasks`); the local-file and hub backends of
:mod:`frpo.stages` use a data set's own held-out split where it has one and otherwise hold out
every fifth row (:func:`is_heldout_row`), so held-out prompts never move.
"""

from __future__ import annotations

TRAIN = "train"
HELDOUT = "heldout"
SPLITS = (TRAIN, HELDOUT)
"""In this order: the toy world seeds a split's draw with its position."""
HELDOUT_EVERY = 5
"""A set with one split holds out row ``i`` when ``i % HELDOUT_EVERY == HELDOUT_EVERY - 1``."""


def check_split(split: str) -> None:
    """ValueError naming the splits when ``split`` is not one of them."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def is_heldout_row(i: int) -> bool:
    """Whether row ``i`` of a set with one split is held out (every fifth row: 4, 9, 14, ...)."""
    return i % HELDOUT_EVERY == HELDOUT_EVERY - 1


def split_rows(n: int, split: str) -> list[int]:
    """The rows of ``split`` in a set of ``n`` rows that has one split."""
    check_split(split)
    return [i for i in range(n) if is_heldout_row(i) == (split == HELDOUT)]
