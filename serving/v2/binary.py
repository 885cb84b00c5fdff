"""Triton's binary tensor data extension: the framing of a request, and tensors as bytes.

A request is its JSON header, then each binary input's bytes in order; the
``Inference-Header-Content-Length`` header gives the JSON's length. Numbers are little-endian,
a BYTES element is a 4-byte little-endian length followed by the bytes. Nothing here knows the
model: ``serving.v2.codec`` checks what the elements are worth.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from serving.http.errors import InferenceHeaderError, InvalidTensorError
from serving.http.validation import shown

HEADER_LENGTH: Final = "Inference-Header-Content-Length"
_BINARY: Final[dict[str, np.dtype[Any]]] = {
    "INT64": np.dtype("<i8"),
    "FP64": np.dtype("<f8"),
    "FP32": np.dtype("<f4"),
}
_FORMATS: Final = {"INT64": "q", "FP64": "d", "FP32": "f"}
"""The ``struct`` code of each numeric datatype (``_BINARY``'s dtypes)."""
LENGTH: Final = struct.Struct("<I")
VECTORISED_FROM: Final = 64
"""Elements from which numpy is worth its fixed cost: a categorical BYTES tensor is split with
``Vocabulary`` and a numeric one read with ``np.frombuffer``; shorter ones take plain Python."""


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary data after it."""
    if header_length is None:
        return body, b""
    text = header_length.strip()
    significant = text.lstrip("0") or "0"
    # A length of more digits than the body's size cannot fit it (and int() raises ValueError
    # past 4,300 digits: a header of 5,000 was a 500).
    fits = text.isascii() and text.isdigit() and len(significant) <= len(str(len(body)))
    length = int(significant) if fits else -1
    if not 0 < length <= len(body):
        raise InferenceHeaderError(
            f"{HEADER_LENGTH} must be the JSON header's length in bytes, from 1 to the body's "
            f"{len(body)} (got {shown(header_length)})",
            field=HEADER_LENGTH,
            expected=f"a whole number from 1 to {len(body)}",
        )
    return body[:length], body[length:]


def numbers(name: str, datatype: str, data: bytes) -> list[Any]:
    """The elements of a numeric tensor sent as binary data (INT64, FP64 or FP32).

    Raises:
        InferenceHeaderError: the size is not a whole number of elements.
    """
    dtype = _BINARY[datatype]
    if len(data) % dtype.itemsize:
        raise InferenceHeaderError(
            f"input '{name}': binary_data_size {len(data)} is not a whole number of "
            f"{datatype} elements ({dtype.itemsize} bytes each)",
            field=name,
        )
    count = len(data) // dtype.itemsize
    if count < VECTORISED_FROM:  # numpy's fixed cost is more than a few elements' unpacking
        return list(struct.unpack(f"<{count}{_FORMATS[datatype]}", data))
    values: list[Any] = np.frombuffer(data, dtype=dtype).tolist()
    return values


def split_bytes(name: str, data: bytes, expected: str) -> list[Any]:
    """BYTES elements one by one, naming the first that is cut off or not UTF-8.

    ``expected`` says what an element must be, for the message about one that is not text.
    """
    values: list[Any] = []
    offset, end = 0, len(data)
    while offset < end:
        index = len(values)
        if offset + 4 > end:
            raise InvalidTensorError(
                f"input '{name}' element {index}: its 4-byte length is cut off "
                f"({end - offset} bytes left)",
                field=name,
                index=index,
                expected="a 4-byte little-endian length, then that many bytes",
            )
        (size,) = LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + size > end:
            raise InvalidTensorError(
                f"input '{name}' element {index}: its length {size} runs past the tensor's "
                f"binary data ({end - offset} bytes left)",
                field=name,
                index=index,
                expected="a 4-byte little-endian length, then that many bytes",
            )
        try:
            values.append(data[offset : offset + size].decode())
        except UnicodeDecodeError:
            raise InvalidTensorError(
                f"input '{name}' element {index}: must be UTF-8 text "
                f"(got {shown(data[offset : offset + size][:40].hex())} in hex)",
                field=name,
                index=index,
                expected=expected,
            ) from None
        offset += size
    return values


class Vocabulary:
    """Splits a binary BYTES tensor of a categorical field with a few numpy passes.

    A Python loop over the length prefixes took most of a 1,000-patient binary request. Here
    the values are short (at most 8 bytes) and hold no zero byte, so the zero bytes of a valid
    tensor are exactly the three high bytes of each 4-byte length: they give every element's
    start, the lengths must chain from one start to the next and end at the last byte, and each
    value, read as one little-endian integer of its bytes, must be one allowed value's. Anything
    else returns None, and the exact parser names the element that is wrong.
    """

    _WIDTH: Final = 8

    @classmethod
    def of(cls, allowed: Sequence[str]) -> Vocabulary | None:
        """The vocabulary of ``allowed``, or None when a value does not fit the scheme.

        A value that is empty, longer than 8 bytes or holds a zero byte leaves its tensors to
        the exact parser: decided once here, not on every request.
        """
        fits = all(
            0 < len(raw) <= cls._WIDTH and b"\0" not in raw for raw in map(str.encode, allowed)
        )
        return cls(allowed) if allowed and fits else None

    def __init__(self, allowed: Sequence[str]) -> None:
        encoded = {value: value.encode() for value in allowed}
        keys = {int.from_bytes(raw, "little"): value for value, raw in encoded.items()}
        order = sorted(keys)
        self._keys = np.array(order, dtype=np.uint64)
        self._values = np.array([keys[key] for key in order], dtype=object)
        # The low ``length`` bytes of a little-endian word: the value, without what follows it.
        self._masks = np.array(
            [(1 << (8 * length)) - 1 for length in range(self._WIDTH + 1)], dtype=np.uint64
        )
        self._offsets = np.arange(self._WIDTH)

    def split(self, data: bytes) -> list[str] | None:
        """The elements, or None when ``data`` is not exactly a run of allowed elements."""
        raw = np.frombuffer(data + bytes(self._WIDTH), dtype=np.uint8)  # padded: reads stay in
        size = len(data)
        zeros = np.flatnonzero(raw[:size] == 0)
        if not zeros.size or zeros.size % 3:
            return None
        first = zeros[0::3]
        starts = first - 1
        if (
            starts[0] != 0
            or not np.array_equal(zeros[1::3], first + 1)
            or not np.array_equal(zeros[2::3], first + 2)
        ):
            return None
        lengths = raw[starts].astype(np.int64)
        ends = starts + 4 + lengths
        if ends[-1] != size or not np.array_equal(ends[:-1], starts[1:]):
            return None
        if lengths.max() > self._WIDTH:
            return None
        words = raw[(starts + 4)[:, None] + self._offsets].view("<u8").ravel()
        words &= self._masks[lengths]
        found = np.minimum(np.searchsorted(self._keys, words), self._keys.size - 1)
        if not np.array_equal(self._keys[found], words):
            return None
        values: list[str] = self._values[found].tolist()
        return values
