"""Question text -> fixed-length token ids: the tokenizer and vocabulary of the TREC setting.

pytorch-SIGUA builds its TREC data with torchtext's legacy `Field(lower=True, fix_length=300)`:
lower-case, split on whitespace, a vocabulary of every training token (no minimum count) plus an
unknown and a padding token, and every question padded (or cut) to 300 tokens. The same is done
here in plain Python, so the ids are fixed numpy arrays before tf.data sees them and the rest of
the framework (probe holdout, label noise, noise files) treats them like images.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, Sequence

import numpy as np

from core.errors import UserError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1   # id 0 is padding, so a zero-filled row is an empty question
DEFAULT_SEQUENCE_LENGTH = 300


def tokenize(text: str) -> list[str]:
  """Lower-cased whitespace tokens (torchtext's default tokenizer with `lower=True`)."""
  return text.lower().split()


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """Token <-> id; `tokens[0]` is PAD and `tokens[1]` is UNK."""
  tokens: tuple[str, ...]

  def __post_init__(self):
    if tuple(self.tokens[:2]) != (PAD, UNK) or len(set(self.tokens)) != len(self.tokens):
      raise ValueError("a vocabulary starts with <pad>, <unk> and has no duplicate tokens")
    object.__setattr__(self, "_ids", {t: i for i, t in enumerate(self.tokens)})

  def __len__(self) -> int:
    return len(self.tokens)

  def token_id(self, token: str) -> int:
    return self._ids.get(token, UNK_ID)

  def encode(self, tokens: Sequence[str], length: int = DEFAULT_SEQUENCE_LENGTH) -> np.ndarray:
    """int32 [length]: the ids of the first `length` tokens, then PAD."""
    ids = np.full(length, PAD_ID, np.int32)
    kept = [self.token_id(t) for t in tokens[:length]]
    ids[:len(kept)] = kept
    return ids


def build_vocabulary(token_lists: Iterable[Sequence[str]]) -> Vocabulary:
  """Every token seen, most frequent first (ties alphabetical), after PAD and UNK."""
  counts = collections.Counter(t for tokens in token_lists for t in tokens if t not in (PAD, UNK))
  return Vocabulary((PAD, UNK, *sorted(counts, key=lambda t: (-counts[t], t))))


def encode_texts(token_lists: Sequence[Sequence[str]], vocabulary: Vocabulary,
                 length: int = DEFAULT_SEQUENCE_LENGTH) -> np.ndarray:
  """int32 [N, length] token ids, padded or cut to `length`."""
  if length < 1:
    raise UserError(f"a text sequence length must be at least 1, got {length}")
  out = np.full((len(token_lists), length), PAD_ID, np.int32)
  for row, tokens in enumerate(token_lists):
    out[row] = vocabulary.encode(tokens, length)
  return out
