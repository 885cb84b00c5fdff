"""Is an answer right? Checks of /predict (and /explain) responses beyond the HTTP status.

A server that answers 200 with a wrong body (an unknown drug, probabilities that do not sum to 1,
a missing model version, fewer predictions than patients) must count as a failure under load, so
Locust users and the tests call these checks on every response.
"""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec

from drugclf.contract import CLASSES, FEATURE_NAMES

# onnxruntime computes probabilities in float32: a sum off by 1e-4 is rounding, not a bug.
PROBABILITY_TOLERANCE: Final = 1e-3
KNOWN_CLASSES: Final = frozenset(CLASSES)
EXPLANATION_TOLERANCE: Final = 1e-6


class WrongAnswerError(Exception):
    """A response that is well-formed HTTP but not a correct answer."""


def check_prediction(item: Any, where: str = "prediction") -> None:
    """Check one prediction: a known drug, the most probable, probabilities summing to 1, a version.

    The shape is serving's ``PredictionResponse``: ``prediction``, ``probabilities`` (one per
    class), ``model_version``.

    Raises:
        WrongAnswerError: what is wrong, naming the field.
    """
    if not isinstance(item, dict):
        raise WrongAnswerError(f"{where} is {type(item).__name__}, not an object")
    drug = item.get("prediction")
    if drug not in KNOWN_CLASSES:
        raise WrongAnswerError(f"{where}: prediction {drug!r} is not one of {', '.join(CLASSES)}")
    probabilities = item.get("probabilities")
    if not isinstance(probabilities, dict) or set(probabilities) != KNOWN_CLASSES:
        raise WrongAnswerError(f"{where}: probabilities {probabilities!r} do not name every class")
    values = list(probabilities.values())
    if not all(isinstance(p, int | float) and 0.0 <= p <= 1.0 for p in values):
        raise WrongAnswerError(f"{where}: probabilities {probabilities!r} are not all in [0, 1]")
    total = math.fsum(values)
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        raise WrongAnswerError(f"{where}: probabilities sum to {total:.6f}, not 1")
    if max(values) - probabilities[drug] > PROBABILITY_TOLERANCE:
        raise WrongAnswerError(f"{where}: prediction {drug} is not the most probable class")
    version = item.get("model_version")
    if not isinstance(version, str) or not version:
        raise WrongAnswerError(f"{where}: no model_version")


def check_predict_body(body: bytes | None, expected: int | None) -> Any:
    """Check a /predict body: one object for a single patient, a list of ``expected`` for a batch.

    Args:
        body: the raw response body.
        expected: None when one patient was sent as an object, else the batch length.

    Returns:
        The decoded body.

    Raises:
        WrongAnswerError: not JSON, the wrong shape or count, or a wrong prediction.
    """
    try:
        decoded = msgspec.json.decode(body or b"")
    except msgspec.DecodeError as exc:
        raise WrongAnswerError(f"body is not JSON: {exc}") from exc
    if expected is None:
        check_prediction(decoded)
        return decoded
    items = decoded.get("predictions") if isinstance(decoded, dict) else decoded
    if not isinstance(items, list):
        raise WrongAnswerError(f"batch answer is {type(decoded).__name__}, not a list")
    if len(items) != expected:
        raise WrongAnswerError(f"{len(items)} predictions for {expected} patients")
    for index, item in enumerate(items):
        check_prediction(item, where=f"prediction {index}")
    return decoded


def check_explanation(body: bytes | None) -> Any:
    """Check one patient's ``/explain`` body: a right prediction whose values add up.

    For every class, ``base_values`` plus the five inputs' ``values`` must be the probability
    (the server's exact Shapley values do it within 1e-6).

    Raises:
        WrongAnswerError: not JSON, a wrong prediction, or values that do not add up.
    """
    try:
        decoded = msgspec.json.decode(body or b"")
    except msgspec.DecodeError as exc:
        raise WrongAnswerError(f"body is not JSON: {exc}") from exc
    check_prediction(decoded, where="explanation")
    values = decoded.get("values")
    if not isinstance(values, dict) or set(values) != set(FEATURE_NAMES):
        raise WrongAnswerError(
            f"explanation: values are incomplete (not one per input: {values!r})"
        )
    try:
        for label, probability in decoded["probabilities"].items():
            total = decoded["base_values"][label] + math.fsum(
                by_class[label] for by_class in values.values()
            )
            if abs(total - probability) > EXPLANATION_TOLERANCE:
                raise WrongAnswerError(
                    f"explanation: base + values = {total:.9f} for {label}, "
                    f"its probability is {probability:.9f}"
                )
    except (KeyError, TypeError, AttributeError) as exc:
        raise WrongAnswerError(
            f"explanation: base_values or values are incomplete ({exc!r})"
        ) from exc
    return decoded


def check_status(status: int, expected: int = 200) -> None:
    """Raise :class:`WrongAnswerError` unless the status is the expected one."""
    if status != expected:
        raise WrongAnswerError(f"HTTP {status}, expected {expected}")


def check_client_error(status: int) -> None:
    """Bad input must be refused with a 4xx: a 2xx accepted it, a 5xx crashed on it."""
    if not 400 <= status < 500:
        raise WrongAnswerError(f"HTTP {status} for an invalid request, expected a 4xx")
