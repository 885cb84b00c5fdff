"""Feature engineering as scikit-learn steps: binning of the numeric inputs and one-hot encoding.

These steps are part of the exported model, so serving passes raw fields to onnxruntime and
cannot drift from training. Bins are open at both ends and right-closed like ``pd.cut``: a value
equal to an edge belongs to the bin below it, and any value above the last edge (an Age of 85, an
Na_to_K of 60) falls in the top bin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from drugclf.artifact import BinningStrategy
from drugclf.contract import CATEGORICAL_FEATURES, FIELDS_BY_NAME, FIXED_BIN_EDGES, NUMERIC_FEATURES

# A learned binning gets at most this many bins per feature: enough to place the decisive
# Na_to_K threshold (near 15) without turning binning back into raw values.
LEARNED_MAX_BINS = 4
LEARNED_MIN_BIN_ROWS = 5


def bin_one_hot(values: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.float64]:
    """One-hot bin membership of each value, right-closed, open at both ends.

    ``above[i, j]`` says whether value i lies above edge j (padded with -inf and +inf); a value
    is in bin j when it is above edge j-1 and not above edge j. The ONNX converter computes the
    same comparisons in float64, which is why parity at the edges is exact.
    """
    padded = np.concatenate(([-np.inf], edges, [np.inf]))
    above = (values.reshape(-1, 1) > padded.reshape(1, -1)).astype(np.float64)
    one_hot: NDArray[np.float64] = above[:, :-1] - above[:, 1:]
    return one_hot


class Binner(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Bin one numeric column and one-hot encode the bin, or pass it through raw.

    Args:
        strategy: ``fixed`` uses ``edges``; ``learned`` takes edges from a shallow decision tree
            fitted on this column against the labels (training rows only); ``none`` passes the
            raw value.
        edges: interior bin edges for ``fixed``.
        max_bins: the most bins a learned binning may use.
        random_state: seed for the learned binning's tree.
    """

    def __init__(
        self,
        strategy: BinningStrategy = "fixed",
        edges: tuple[float, ...] = (),
        max_bins: int = LEARNED_MAX_BINS,
        random_state: int = 0,
    ) -> None:
        self.strategy = strategy
        self.edges = edges
        self.max_bins = max_bins
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> Binner:  # noqa: N803 (scikit-learn's naming)
        """Fix the edges (learn them for ``learned``)."""
        column = self._column(X)
        self.n_features_in_ = 1
        if self.strategy == "none":
            self.edges_ = None
        elif self.strategy == "fixed":
            self.edges_ = np.asarray(sorted(self.edges), dtype=np.float64)
        elif self.strategy == "learned":
            if y is None:
                raise ValueError("learned binning needs the labels")
            tree = DecisionTreeClassifier(
                max_leaf_nodes=self.max_bins,
                min_samples_leaf=LEARNED_MIN_BIN_ROWS,
                random_state=self.random_state,
            ).fit(column.reshape(-1, 1), np.asarray(y))
            split = tree.tree_.children_left != tree.tree_.children_right
            self.edges_ = np.unique(tree.tree_.threshold[split].astype(np.float64))
        else:
            raise ValueError(f"unknown binning strategy {self.strategy!r}")
        return self

    def transform(self, X: Any) -> NDArray[np.float64]:  # noqa: N803
        """Return the one-hot bins (or the raw column for ``none``)."""
        column = self._column(X)
        if self.edges_ is None:
            return column.reshape(-1, 1)
        return bin_one_hot(column, self.edges_)

    def get_feature_names_out(self, input_features: Any = None) -> NDArray[np.str_]:
        """Names like ``Age_bin0``; the raw name for ``none``."""
        name = str(input_features[0]) if input_features is not None else "x"
        if self.edges_ is None:
            return np.asarray([name])
        return np.asarray([f"{name}_bin{i}" for i in range(len(self.edges_) + 1)])

    @staticmethod
    def _column(X: Any) -> NDArray[np.float64]:  # noqa: N803
        array = np.asarray(X, dtype=np.float64)
        return array.reshape(-1)


def build_preprocessor(strategy: BinningStrategy, random_state: int = 0) -> ColumnTransformer:
    """Binning for Age and Na_to_K, one-hot for the categories, as one ColumnTransformer.

    The one-hot categories come from the contract, not the data, so a category that a small
    dataset happens to lack still has its column and serving never meets an unknown one.
    """
    numeric = [
        (
            name,
            Binner(strategy=strategy, edges=FIXED_BIN_EDGES[name], random_state=random_state),
            [name],
        )
        for name in NUMERIC_FEATURES
    ]
    categories = [list(FIELDS_BY_NAME[name].allowed or ()) for name in CATEGORICAL_FEATURES]
    one_hot = OneHotEncoder(categories=categories, handle_unknown="error", sparse_output=False)
    return ColumnTransformer(
        [*numeric, ("categories", one_hot, list(CATEGORICAL_FEATURES))],
        remainder="drop",
        sparse_threshold=0.0,
    )
