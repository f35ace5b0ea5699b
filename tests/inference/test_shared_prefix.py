"""Which opening of a right-padded batch is shared: all rows' tokens, before any scored position."""

from __future__ import annotations

import torch

from brandvoice.inference.scoring import IGNORE_INDEX as X
from brandvoice.inference.shared_prefix import shared_prefix_length

SYSTEM = list(range(100, 112))  # 12 tokens every row opens with


def batch(*rows: tuple[list[int], int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, labels (the last ``n`` tokens of each row scored) and attention mask."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), X, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (tokens, scored) in enumerate(rows):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        if scored:
            labels[row, len(tokens) - scored : len(tokens)] = torch.tensor(tokens[-scored:])
        mask[row, : len(tokens)] = 1
    return ids, labels, mask


def test_rows_share_the_system_prompt_up_to_where_they_differ() -> None:
    ids, labels, mask = batch(([*SYSTEM, 1, 2, 3, 4], 2), ([*SYSTEM, 5, 6, 7], 1))
    assert shared_prefix_length(ids, labels, mask) == 12


def test_the_prefix_ends_before_the_state_that_predicts_the_first_label() -> None:
    # Same prompt, different replies (a preference pair): the first reply token is at 14.
    prompt = [*SYSTEM, 7, 8]
    ids, labels, mask = batch(([*prompt, 1, 2], 2), ([*prompt, 3, 4, 5], 3))
    assert shared_prefix_length(ids, labels, mask) == 13


def test_a_short_or_absent_shared_opening_and_a_single_row_are_not_shared() -> None:
    ids, labels, mask = batch(([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 2), ([1, 2, 3, 9, 9, 9, 9, 9], 2))
    assert shared_prefix_length(ids, labels, mask) == 0
    ids, labels, mask = batch(([*SYSTEM, 1, 2], 1))
    assert shared_prefix_length(ids, labels, mask) == 0


def test_padding_is_never_part_of_the_prefix() -> None:
    # The short row's padding has the id the long row's text has there (0), but is not text.
    ids, labels, mask = batch(([*SYSTEM[:10], 0, 0, 5, 6], 2), (SYSTEM[:10], 0))
    assert ids[1, 10:12].tolist() == ids[0, 10:12].tolist()
    assert shared_prefix_length(ids, labels, mask) == 10
