"""Services on ``app.state``, looked up by their type: how a route reaches its feature's service.

``create_app`` builds each service once and stores it with ``services(...)``; a handler takes
Litestar's ``state`` and calls ``service(state, PredictionService)``. One dictionary lookup, no
per-request dependency injection, and the handler's type checker knows what it got.
"""

from __future__ import annotations

from typing import Any, TypeVar

from litestar.datastructures import State

T = TypeVar("T")


def services(*instances: Any) -> State:
    """An app state holding each instance under its class's name (None is skipped)."""
    return State({type(i).__name__: i for i in instances if i is not None})


def service(state: State, kind: type[T]) -> T:
    """The service of type ``kind`` that ``create_app`` stored.

    Raises:
        LookupError: the app was built without it (a wiring bug, found by any test of the route).
    """
    instance = state.get(kind.__name__)
    if not isinstance(instance, kind):
        raise LookupError(f"the app has no {kind.__name__}")
    return instance
