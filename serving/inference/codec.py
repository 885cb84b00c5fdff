"""Strict request decoding and fast response encoding for ``/predict``, built once per app.

Litestar would convert a body leniently (``"47"`` becomes 47); the prebuilt msgspec decoder
here is strict and knows the batch limit, so one call validates everything. Its errors go
through ``serving.http.validation``: a message for people, the field, its index and what it
accepts, worded from the feature contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Final, cast

import msgspec
import numpy as np
import numpy.typing as npt

from drugclf.contract import FIELDS, Patient
from serving.http.errors import BatchSizeError, MalformedBodyError, UnsupportedMediaTypeError
from serving.http.validation import Rule, Subject, invalid_input, untyped
from serving.inference.schemas import PredictionResponse, Probabilities

_BATCH_PREFIX: Final = "Expected `array` of length"
_JSON_BYTES: Final = b"application/json"
_CONTENT_TYPE: Final = b"content-type"
ANSWER_CACHE_SIZE: Final = 4096
"""Distinct encoded answers kept per worker (its memory: docs/serving.md, "Why it is fast")."""

PATIENT_EXPECTED: Final = "a patient object with exactly " + ", ".join(f.name for f in FIELDS)
PATIENTS: Final = Subject(
    rules={spec.name: Rule.of_field(spec) for spec in FIELDS},
    body_expected=f"{PATIENT_EXPECTED}, or a non-empty array of them",
    item_expected=PATIENT_EXPECTED,
)
"""How errors describe a ``/predict`` body, worded from the feature contract."""


class PatientCodec:
    """Decode ``Patient | list[Patient]`` strictly; encode prediction answers."""

    def __init__(self, max_batch_size: int) -> None:
        self.max_batch_size = max_batch_size
        batch = Annotated[list[Patient], msgspec.Meta(min_length=1, max_length=max_batch_size)]
        self._decoder = msgspec.json.Decoder(Patient | batch)
        self._encoder = msgspec.json.Encoder()
        self._cache: dict[tuple[str, bytes], bytes] = {}
        self._cache_version: str | None = None

    def decode(self, body: bytes) -> Patient | list[Patient]:
        """One patient or a non-empty batch of at most ``max_batch_size`` patients.

        Raises:
            MalformedBodyError: empty or not JSON.
            BatchSizeError: an empty array or more patients than the limit.
            InvalidInputError: JSON that is not a valid patient (names field, index, expectation).
        """
        try:
            decoded: Patient | list[Patient] = self._decoder.decode(body)
        except msgspec.ValidationError as exc:
            if str(exc).startswith(_BATCH_PREFIX):
                raise self._batch_size_error(body) from None
            raise invalid_input(exc, PATIENTS, lambda: untyped(body)) from None
        except msgspec.DecodeError as exc:
            reason = "the request body is empty" if not body.strip() else _json_reason(exc)
            raise MalformedBodyError(reason, expected="a JSON object or array") from None
        except UnicodeDecodeError:  # msgspec raises it for invalid UTF-8 inside strings
            raise MalformedBodyError(
                "the request body is not valid UTF-8", expected="a JSON object or array"
            ) from None
        return decoded

    def _batch_size_error(self, body: bytes) -> BatchSizeError:
        limit = self.max_batch_size
        document = untyped(body)
        got = f" (got {len(document)})" if isinstance(document, list) else ""
        return BatchSizeError(
            f"a batch holds 1 to {limit} patients{got}",
            expected=f"a JSON array of 1 to {limit} patient objects",
        )

    def encode_one(self, label: str, probabilities: npt.NDArray[np.float32], version: str) -> bytes:
        """The answer for one patient (``probabilities`` is its row).

        Encoded directly: for one row the cache's lookup costs more than it saves.
        """
        return self._encode_answer(label, probabilities.tolist(), version)

    def encode_many(
        self, labels: Sequence[str], probabilities: npt.NDArray[np.float32], version: str
    ) -> bytes:
        """The answers for a batch, in order."""
        return b"[" + b",".join(self._answers(labels, probabilities, version)) + b"]"

    def _answers(
        self, labels: Sequence[str], probabilities: npt.NDArray[np.float32], version: str
    ) -> list[bytes]:
        """Each patient's encoded answer, from the cache when the same answer was encoded before.

        A forest gives few distinct answers, even over a large batch, and building and encoding
        two structs per patient was most of a batch's encoding time. The key is the
        label and the exact float32 bytes of the row, so a cached answer is byte for byte the one
        encoding would give. The graph's values are sent as they are (0.8999999761581421):
        rounding them costs more than the rest of the encoding, and they still sum to 1 within
        float32 error.
        """
        cache = self._cache
        if version != self._cache_version:
            cache.clear()
            self._cache_version = version
        rows = np.ascontiguousarray(probabilities)
        width = rows.shape[1] * rows.itemsize
        # One bytes object per row, made in C (a void view's tolist), as the dictionary key.
        row_bytes = cast("list[bytes]", rows.view(np.dtype((np.void, width))).ravel().tolist())
        keys = list(zip(labels, row_bytes, strict=True))
        answers: list[bytes | None] = list(map(cache.get, keys))
        if None in answers:
            for i, cached in enumerate(answers):
                if cached is None:
                    label, row = keys[i]
                    values = np.frombuffer(row, dtype=rows.dtype).tolist()
                    if len(cache) >= ANSWER_CACHE_SIZE:
                        cache.clear()  # rare (unbinned models): simpler than an LRU, as good
                    answers[i] = cache[keys[i]] = self._encode_answer(label, values, version)
        return answers  # type: ignore[return-value] # every None was replaced

    def _encode_answer(self, label: str, probabilities: list[float], version: str) -> bytes:
        return self._encoder.encode(
            PredictionResponse(label, Probabilities(*probabilities), version)
        )

    def encode(self, value: object) -> bytes:
        """Encode any other answer with the shared encoder."""
        return self._encoder.encode(value)


def check_json_content_type(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Refuse a declared content type that is not JSON (no content type is taken as JSON).

    Raises:
        UnsupportedMediaTypeError: e.g. ``text/plain`` or a form.
    """
    for name, value in headers:
        if name == _CONTENT_TYPE:
            media = value.split(b";", 1)[0].strip().lower()
            if media != _JSON_BYTES and not media.endswith(b"+json"):
                raise UnsupportedMediaTypeError(
                    f"content type {value.decode('latin-1')!r} is not supported",
                    expected="application/json",
                )
            return


def _json_reason(exc: msgspec.DecodeError) -> str:
    # msgspec says e.g. "JSON is malformed: invalid character (byte 65)"; NaN and Infinity
    # land here too because JSON has no such literals.
    return f"the request body is not valid JSON ({exc})"
