"""Ground truth: ``POST /feedback`` labels answered patients, stored beside the prediction log.

A label names one patient of one answered request: its ``request_id`` (the ``x-request-id`` the
answer carried) and its ``index`` in the batch (0 for a single patient). Labels are spelled as
the contract spells the classes, case-normalised as training reads them
(``drugclf.contract.normalise_label``). A call is all or nothing: every item is checked first
(404 for an unknown request or index, 409 for a patient labelled differently before), then all
are stored in one transaction; the same label again is accepted (idempotent), so a client may
retry a call.

The log is written asynchronously (``predlog``): an answer reaches the database within about
a second, and a label for an answer that is not there yet is a 404 to retry.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Final

import msgspec

from drugclf.contract import CLASSES, normalise_label
from serving.http.errors import (
    BatchSizeError,
    ErrorExample,
    InvalidInputError,
    MalformedBodyError,
    ServingError,
)
from serving.http.validation import Subject, invalid_input, rules_of, shown, untyped
from serving.monitoring.predlog.backends import FEEDBACK_TABLE, TABLE, Backend

MAX_ITEMS: Final = 1000
"""Labels in one call at most."""
REQUEST_ID_CHARS: Final = 128


def _any_case(text: str) -> str:
    # "[Dd][Rr]...": the pattern goes into the OpenAPI document, whose regex has no (?i).
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in text)


LABEL_PATTERN: Final = r"^\s*(?:" + "|".join(map(_any_case, CLASSES)) + r")\s*$"
"""What ``normalise_label`` accepts, as the OpenAPI document states it (from the contract's
classes, so a new class is accepted without editing this)."""


class FeedbackItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The true class of one answered patient."""

    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=REQUEST_ID_CHARS)]
    """The answer's ``x-request-id``."""
    label: Annotated[str, msgspec.Meta(pattern=LABEL_PATTERN)]
    """The true class (DrugA, DrugB, DrugC, DrugX, DrugY; letter case as training accepts)."""
    index: Annotated[int, msgspec.Meta(ge=0)] = 0
    """The patient's position in its request's batch (0 for a single patient)."""


FeedbackBody = Annotated[list[FeedbackItem], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]


class FeedbackReply(msgspec.Struct, frozen=True):
    """What a feedback call stored."""

    accepted: int
    """Items in the call (all of them: a call is all or nothing)."""
    recorded: int
    """Labels new to the log."""
    unchanged: int
    """Labels the log already had, the same (sent again)."""
    status: str = "success"


class PredictionNotFoundError(ServingError):
    """No answered request with that id (or no patient at that index) in the prediction log."""

    status_code = 404
    code = "prediction_not_found"
    example = ErrorExample(
        "no answered request 'a1b2c3' in the prediction log (answers reach it within about "
        "a second: retry)",
        field="request_id",
        index=0,
    )


class LabelConflictError(ServingError):
    """The patient already has a different label (labels are not overwritten)."""

    status_code = 409
    code = "label_conflict"
    example = ErrorExample(
        "request 'a1b2c3' index 0 is already labelled DrugA (got DrugY)", field="label", index=0
    )


FEEDBACK: Final = Subject(
    rules=rules_of(FeedbackItem),
    body_expected=f"a JSON array of 1 to {MAX_ITEMS} objects with request_id, index and label",
    item_expected="an object with request_id, index (default 0) and label",
)
_DECODER: Final = msgspec.json.Decoder(FeedbackBody)
_LABEL_EXPECTED: Final = "one of " + ", ".join(CLASSES)


def decode_feedback(body: bytes) -> list[tuple[str, int, str]]:
    """The items of a feedback body as (request id, index, class), labels normalised.

    Raises:
        MalformedBodyError: not JSON.
        BatchSizeError: an empty array or more than ``MAX_ITEMS`` items.
        InvalidInputError: an item that is not a label of a patient (names the field and index).
    """
    try:
        items = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        if str(exc).startswith("Expected `array` of length"):
            document = untyped(body)
            got = f" (got {len(document)})" if isinstance(document, list) else ""
            raise BatchSizeError(
                f"a feedback call holds 1 to {MAX_ITEMS} labels{got}",
                expected=f"a JSON array of 1 to {MAX_ITEMS} label objects",
            ) from None
        error = invalid_input(exc, FEEDBACK, lambda: untyped(body))
        if error.field == "label" and error.expected == "a string":  # say which classes exist
            error = InvalidInputError(
                error.message.replace("a string", _LABEL_EXPECTED, 1),
                field="label",
                index=error.index,
                expected=_LABEL_EXPECTED,
            )
        raise error from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        reason = "the request body is empty" if not body.strip() else "the body is not valid JSON"
        raise MalformedBodyError(reason, expected="a JSON array of label objects") from None
    decoded = []
    for i, item in enumerate(items):
        label = normalise_label(item.label)
        if label is None:
            raise InvalidInputError(
                f"label must be {_LABEL_EXPECTED} (got {shown(item.label)})",
                field="label",
                index=i,
                expected=_LABEL_EXPECTED,
            )
        decoded.append((item.request_id, item.index, label))
    return decoded


class FeedbackStore:
    """Labels in the prediction log's database (blocking: call from a thread)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def add(self, items: list[tuple[str, int, str]]) -> FeedbackReply:
        """Check every item, then store the new labels in one transaction.

        Raises:
            PredictionNotFoundError: an unknown request id, or an index beyond its batch.
            LabelConflictError: a patient labelled differently before (or twice in this call).
        """
        backend, p = self.backend, self.backend.placeholder
        ids = sorted({request_id for request_id, _, _ in items})
        marks = ", ".join([p] * len(ids))
        with backend.session() as conn:
            sizes = dict(
                conn.execute(
                    f"SELECT request_id, MAX(batch_size) FROM {TABLE} "  # noqa: S608
                    f"WHERE request_id IN ({marks}) AND (role IS NULL OR role <> 'shadow') "
                    "GROUP BY request_id",
                    ids,
                ).fetchall()
            )
            known: dict[tuple[str, int], str] = {
                (str(r), int(i)): str(label)
                for r, i, label in conn.execute(
                    f"SELECT request_id, batch_index, label FROM {FEEDBACK_TABLE} "  # noqa: S608
                    f"WHERE request_id IN ({marks})",
                    ids,
                ).fetchall()
            }
            new: dict[tuple[str, int], str] = {}
            unchanged = 0
            for position, (request_id, index, label) in enumerate(items):
                _check_answered(sizes, request_id, index, position)
                before = known.get((request_id, index)) or new.get((request_id, index))
                if before is None:
                    new[(request_id, index)] = label
                elif before != label:
                    raise LabelConflictError(
                        f"request {shown(request_id)} index {index} is already labelled {before} "
                        f"(got {label})",
                        field="label",
                        index=position,
                    )
                else:
                    unchanged += 1
            if new:
                now = time.time()
                rows: list[Any] = [(r, i, label, now) for (r, i), label in new.items()]
                conn.cursor().executemany(  # type: ignore[attr-defined] # both drivers have it
                    f"INSERT INTO {FEEDBACK_TABLE} (request_id, batch_index, label, ts) "  # noqa: S608
                    f"VALUES ({p}, {p}, {p}, {p}) "
                    "ON CONFLICT (request_id, batch_index) DO NOTHING",
                    rows,
                )
            conn.commit()
        return FeedbackReply(accepted=len(items), recorded=len(new), unchanged=unchanged)


def _check_answered(sizes: dict[Any, Any], request_id: str, index: int, position: int) -> None:
    size = sizes.get(request_id)
    if size is None:
        raise PredictionNotFoundError(
            f"no answered request {shown(request_id)} in the prediction log (answers reach "
            "it within about a second: retry)",
            field="request_id",
            index=position,
        )
    if index >= int(size):
        raise PredictionNotFoundError(
            f"request {shown(request_id)} had {size} patient{'s' if size != 1 else ''}: "
            f"no index {index}",
            field="index",
            index=position,
        )
