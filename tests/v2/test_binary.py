"""``serving.v2.binary``: the numpy split of categorical BYTES tensors against the exact parser."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from serving.v2.binary import Vocabulary, split_bytes

ALLOWED = ("HIGH", "LOW", "NORMAL")
VOCABULARY = Vocabulary.of(ALLOWED)
# Allowed values, and near misses: empty, a prefix, a longer word, a zero byte, too long.
PIECES = [b"HIGH", b"LOW", b"NORMAL", b"", b"HIG", b"HIGHER", b"LOW\0", b"\0", b"NORMALXYZ"]


def _pack(values: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(value)) + value for value in values)


def test_a_vocabulary_that_does_not_fit_the_scheme_is_none() -> None:
    assert Vocabulary.of(()) is None
    assert Vocabulary.of(("A", "")) is None
    assert Vocabulary.of(("A", "B\0")) is None
    assert Vocabulary.of(("A", "NINEBYTES")) is None


@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=8), st.data())
def test_the_split_is_the_exact_parser_s_or_none(values: list[bytes], data: st.DataObject) -> None:
    assert VOCABULARY is not None
    packed = bytearray(_pack(values))
    changed = data.draw(st.booleans())
    if changed:  # one byte changed: a length, a value or a zero
        packed[data.draw(st.integers(0, len(packed) - 1))] = data.draw(st.integers(0, 255))
    split = VOCABULARY.split(bytes(packed))
    if split is not None:
        assert split == split_bytes("BP", bytes(packed), "one of HIGH, LOW, NORMAL")
        assert set(split) <= set(ALLOWED)
    if not changed and all(value.decode() in ALLOWED for value in values):
        assert split == [value.decode() for value in values]  # valid: never left to the loop
