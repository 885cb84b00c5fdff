"""What the export gates after parity share: a report of their outcome and a refusal error.

The explainer's gate (``training.explanations``) and the cell table's (``training.cell_table``)
each check an artifact against ``model.onnx`` on the parity gate's cases; a failed gate
refuses to publish the version, naming its first failing cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import pandas as pd


class Outcome(Protocol):
    """A gate's recorded result (it goes into the metadata)."""

    @property
    def passed(self) -> bool:
        """Whether every case held."""
        ...


G = TypeVar("G", bound=Outcome)


@dataclass(frozen=True)
class GateReport(Generic[G]):
    """A gate's outcome, its one line for humans, and its first failing cases."""

    gate: G
    line: str
    first_failures: pd.DataFrame

    @property
    def passed(self) -> bool:
        """Whether every case held."""
        return self.gate.passed

    def describe(self) -> str:
        """The line, plus the first failures when there are any."""
        if self.passed:
            return self.line
        return f"{self.line}\nfirst failures:\n{self.first_failures.to_string(index=False)}"


class GateError(Exception, Generic[G]):
    """A gate failed: the version is not published."""

    gate_name = "export"
    """What the refusal calls the gate ("the cell table gate failed ...")."""

    def __init__(self, report: GateReport[G]) -> None:
        super().__init__(report.describe())
        self.report = report
