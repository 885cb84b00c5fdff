"""Cross-validated search over the forest's size, the binning strategy and SMOTE."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final, get_args

import numpy as np
import pandas as pd

from drugclf.artifact import BinningStrategy, Params
from training.evaluate import cross_validated_accuracy

N_ESTIMATORS: Final = (50, 100, 200)
MAX_LEAF_NODES: Final = (10, 30, 50)
STRATEGIES: Final[tuple[BinningStrategy, ...]] = get_args(BinningStrategy)
SMOTE_CHOICES: Final = (True, False)


def grid(
    n_estimators: Iterable[int] = N_ESTIMATORS,
    max_leaf_nodes: Iterable[int] = MAX_LEAF_NODES,
    strategies: Iterable[BinningStrategy] = STRATEGIES,
    smote: Iterable[bool] = SMOTE_CHOICES,
    base: Params | None = None,
) -> list[Params]:
    """Every combination to try."""
    start = base or Params()
    return [
        Params(
            n_estimators=n,
            max_leaf_nodes=leaves,
            binning=strategy,
            smote=use_smote,
            test_size=start.test_size,
            random_state=start.random_state,
        )
        for n, leaves, strategy, use_smote in itertools.product(
            n_estimators, max_leaf_nodes, strategies, smote
        )
    ]


def search(
    candidates: list[Params],
    features: pd.DataFrame,
    labels: pd.Series,
    progress: Callable[[Params], None] | None = None,
) -> pd.DataFrame:
    """CV accuracy of every candidate, best first (ties: the smaller, simpler model first)."""
    rows = []
    for params in candidates:
        scores = cross_validated_accuracy(params, features, labels)
        rows.append(
            {
                "binning": params.binning,
                "smote": params.smote,
                "n_estimators": params.n_estimators,
                "max_leaf_nodes": params.max_leaf_nodes,
                "cv_mean": float(np.mean(scores)),
                "cv_std": float(np.std(scores)),
                "cv_min": float(np.min(scores)),
            }
        )
        if progress is not None:
            progress(params)
    table = pd.DataFrame(rows)
    return table.sort_values(
        ["cv_mean", "cv_std", "n_estimators", "max_leaf_nodes"],
        ascending=[False, True, True, True],
        ignore_index=True,
    )


def best_params(table: pd.DataFrame, base: Params | None = None) -> Params:
    """The winning row of a search as Params."""
    top = table.iloc[0]
    start = base or Params()
    return Params(
        n_estimators=int(top["n_estimators"]),
        max_leaf_nodes=int(top["max_leaf_nodes"]),
        binning=top["binning"],
        smote=bool(top["smote"]),
        test_size=start.test_size,
        random_state=start.random_state,
    )


def plot(table: pd.DataFrame, path: Path) -> None:
    """Bar chart of the best CV accuracy per binning strategy and SMOTE choice."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    best = table.groupby(["binning", "smote"], as_index=False).first()
    labels = [
        f"{b}\n{'SMOTE' if s else 'no SMOTE'}"
        for b, s in zip(best.binning, best.smote, strict=True)
    ]
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    ax.bar(labels, best.cv_mean, yerr=best.cv_std, color="#4C78A8", capsize=4)
    ax.set_ylim(max(0.0, float(best.cv_mean.min()) - 0.1), 1.0)
    ax.set_ylabel("5-fold CV accuracy (best params)")
    ax.set_title("Binning strategy and SMOTE under cross-validation", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
