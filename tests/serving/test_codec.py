"""The codec's answer cache gives byte for byte what encoding each answer would."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from drugclf.contract import CLASSES
from serving.inference import codec as codec_module
from serving.inference.codec import PatientCodec
from serving.inference.schemas import PredictionResponse, Probabilities


def _expected(labels: list[str], probabilities: np.ndarray, version: str) -> bytes:
    return msgspec.json.encode(
        [
            PredictionResponse(label, Probabilities(*row), version)
            for label, row in zip(labels, probabilities.tolist(), strict=True)
        ]
    )


def _answers(rng: np.random.Generator, n: int, distinct: int) -> tuple[list[str], np.ndarray]:
    pool = rng.dirichlet(np.ones(len(CLASSES)), size=distinct).astype(np.float32)
    probabilities = pool[rng.integers(0, distinct, size=n)]
    labels = [CLASSES[i] for i in probabilities.argmax(axis=1)]
    return labels, probabilities


def test_cached_answers_equal_direct_encoding() -> None:
    codec, rng = PatientCodec(1000), np.random.default_rng(0)
    for _ in range(3):  # misses first, then mostly hits
        labels, probabilities = _answers(rng, 1000, distinct=50)
        body = codec.encode_many(labels, probabilities, "v1")
        assert body == _expected(labels, probabilities, "v1")
        assert len(msgspec.json.decode(body)) == 1000


def test_the_label_is_part_of_the_key() -> None:
    codec = PatientCodec(10)
    row = np.array([[0.2, 0.2, 0.2, 0.2, 0.2]], dtype=np.float32)
    first = msgspec.json.decode(codec.encode_many(["DrugA"], row, "v1"))
    second = msgspec.json.decode(codec.encode_many(["DrugY"], row, "v1"))
    assert first[0]["prediction"] == "DrugA"
    assert second[0]["prediction"] == "DrugY"


def test_a_new_model_version_is_never_answered_from_the_old_ones_cache() -> None:
    codec, rng = PatientCodec(100), np.random.default_rng(1)
    labels, probabilities = _answers(rng, 100, distinct=5)
    codec.encode_many(labels, probabilities, "v1")
    body = codec.encode_many(labels, probabilities, "v2")
    assert body == _expected(labels, probabilities, "v2")


def test_the_cache_stays_bounded_and_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec_module, "ANSWER_CACHE_SIZE", 64)
    codec, rng = PatientCodec(1000), np.random.default_rng(2)
    for _ in range(5):
        labels, probabilities = _answers(rng, 500, distinct=500)
        assert codec.encode_many(labels, probabilities, "v1") == _expected(
            labels, probabilities, "v1"
        )
        assert len(codec._cache) <= 64


def test_a_non_contiguous_probability_matrix() -> None:
    codec = PatientCodec(10)
    wide = np.random.default_rng(3).random((4, 10)).astype(np.float32)
    probabilities = wide[:, ::2]  # a strided view, as a slice of a bigger output would be
    labels = ["DrugA", "DrugB", "DrugC", "DrugX"]
    assert codec.encode_many(labels, probabilities, "v1") == _expected(labels, probabilities, "v1")


def test_encode_one_matches_the_batch_form() -> None:
    codec = PatientCodec(10)
    row = np.array([0.1, 0.2, 0.3, 0.15, 0.25], dtype=np.float32)
    one = codec.encode_one("DrugC", row, "v1")
    assert b"[" + one + b"]" == codec.encode_many(["DrugC"], row.reshape(1, -1), "v1")
