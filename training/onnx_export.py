"""Convert the fitted inference pipeline to ONNX with skl2onnx.

The graph takes one [N, 1] tensor per raw input, named as in the feature contract (Age int64,
Na_to_K double, the categories as strings), and returns the label and the class probabilities
as plain tensors (no ZipMap), so serving needs nothing but onnxruntime and numpy.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import onnx
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.algebra.onnx_ops import OnnxCast, OnnxGreater, OnnxIdentity, OnnxSlice, OnnxSub
from skl2onnx.common.data_types import (
    DoubleTensorType,
    FloatTensorType,
    Int64TensorType,
    StringTensorType,
)
from sklearn.pipeline import Pipeline

from drugclf.artifact import LABEL_OUTPUT, PROBABILITIES_OUTPUT, InputSpec
from drugclf.contract import CLASSES, FIELDS
from training.features import Binner

# Pinned so an artifact is reproducible and runs on the onnxruntime versions we test with.
OPSET: Final[dict[str, int]] = {"": 17, "ai.onnx.ml": 3}
_ONNX_TYPES: Final = {"integer": "int64", "number": "double", "category": "string"}
_TENSOR_TYPES: Final = {
    "int64": Int64TensorType,
    "double": DoubleTensorType,
    "string": StringTensorType,
}


def input_specs() -> list[InputSpec]:
    """The graph inputs, derived from the feature contract."""
    return [InputSpec(name=f.name, element_type=_ONNX_TYPES[f.type]) for f in FIELDS]  # type: ignore[arg-type]


def _binner_shape(operator: Any) -> None:
    binner: Binner = operator.raw_operator
    width = 1 if binner.edges_ is None else len(binner.edges_) + 1
    batch = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([batch, width])


def _binner_converter(scope: Any, operator: Any, container: Any) -> None:
    binner: Binner = operator.raw_operator
    opv = container.target_opset
    out = operator.outputs[0].full_name
    # float64 comparisons, as in Binner.transform: casting to float32 first would move values
    # that sit just beside an edge onto it, and into the wrong bin.
    as_double = OnnxCast(operator.inputs[0], to=onnx.TensorProto.DOUBLE, op_version=opv)
    if binner.edges_ is None:
        # The forest compares float32 values, exactly as scikit-learn's trees cast their input.
        node = OnnxCast(as_double, to=onnx.TensorProto.FLOAT, op_version=opv, output_names=[out])
        node.add_to(scope, container)
        return
    padded = np.concatenate(([-np.inf], binner.edges_, [np.inf])).reshape(1, -1)
    above = OnnxCast(
        OnnxGreater(as_double, padded.astype(np.float64), op_version=opv),
        to=onnx.TensorProto.FLOAT,
        op_version=opv,
    )
    width = padded.shape[1]
    lower = OnnxSlice(above, np.array([0]), np.array([width - 1]), np.array([1]), op_version=opv)
    upper = OnnxSlice(above, np.array([1]), np.array([width]), np.array([1]), op_version=opv)
    one_hot = OnnxSub(lower, upper, op_version=opv)
    OnnxIdentity(one_hot, op_version=opv, output_names=[out]).add_to(scope, container)


update_registered_converter(Binner, "DrugclfBinner", _binner_shape, _binner_converter)


def to_onnx(pipeline: Pipeline) -> onnx.ModelProto:
    """Convert a fitted inference pipeline (no SMOTE) to an ONNX model."""
    forest = pipeline.steps[-1][1]
    initial_types = [(s.name, _TENSOR_TYPES[s.element_type]([None, 1])) for s in input_specs()]
    model = convert_sklearn(
        pipeline,
        initial_types=initial_types,
        final_types=[
            (LABEL_OUTPUT, StringTensorType([None])),
            (PROBABILITIES_OUTPUT, FloatTensorType([None, len(CLASSES)])),
        ],
        target_opset=OPSET,
        options={id(forest): {"zipmap": False}},
    )
    model.doc_string = "drug-classifier: raw patient fields -> drug class and probabilities"
    result: onnx.ModelProto = model
    drop_zero_class_weights(result)
    return result


_CLASS_ENTRIES: Final = ("class_ids", "class_nodeids", "class_treeids")


def drop_zero_class_weights(model: onnx.ModelProto) -> int:
    """Remove the leaves' zero class weights from the forest, in place; returns how many.

    skl2onnx writes a weight for every class at every leaf; most are 0 and onnxruntime adds
    each one, per tree and per row. Adding 0 changes no sum, so the outputs are the same and
    ``session.run`` has less to do (measured in the README, "What it does"); the parity gate
    proves the result against scikit-learn like any export.
    """
    dropped = 0
    for node in model.graph.node:
        if node.op_type != "TreeEnsembleClassifier":
            continue
        attributes = {a.name: a for a in node.attribute}
        if "class_weights" not in attributes:  # the *_as_tensor (double) form: left as it is
            continue
        weights = list(attributes["class_weights"].floats)
        keep = [i for i, weight in enumerate(weights) if weight != 0.0]
        dropped += len(weights) - len(keep)
        for name in _CLASS_ENTRIES:
            values = list(attributes[name].ints)
            del attributes[name].ints[:]
            attributes[name].ints.extend(values[i] for i in keep)
        del attributes["class_weights"].floats[:]
        attributes["class_weights"].floats.extend(weights[i] for i in keep)
    return dropped
