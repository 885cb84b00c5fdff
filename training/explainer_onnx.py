"""The explainer as an ONNX graph: the model's raw inputs in, Shapley values out.

The graph finds each patient's cell with the comparisons the model makes (float64 against bin
edges, float32 against an unbinned forest's thresholds; the categories by name) and gathers
the values precomputed for that cell at export. Serving runs it with onnxruntime like the
model, so it never re-implements binning.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from drugclf.artifact import BASE_VALUES_OUTPUT, CELL_OUTPUT, VALUES_OUTPUT
from drugclf.contract import FEATURE_NAMES
from training.onnx_export import OPSET, input_specs
from training.shapley import CellGrid, ShapleyTables

_TYPES: Final = {
    "int64": TensorProto.INT64,
    "double": TensorProto.DOUBLE,
    "string": TensorProto.STRING,
}
# An unknown category maps here: far outside the table, so Gather fails loudly instead of
# wrapping round to another cell (serving validates categories before, so it never happens).
_UNKNOWN_CATEGORY: Final = 1 << 40


def explainer_model(grid: CellGrid, tables: ShapleyTables) -> onnx.ModelProto:
    """The explainer graph for one exported model.

    Outputs: ``values`` [N, inputs, classes] (float64), ``base_values`` [classes] and
    ``cell`` [N, 1] (the flat cell index, for tests and debugging).
    """
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(value, name))
        return name

    flat: str | None = None
    for name in FEATURE_NAMES:
        index = f"{name}_cell"
        if name in grid.numeric:
            axis = grid.numeric[name]
            as_double = f"{name}_double"
            nodes.append(helper.make_node("Cast", [name], [as_double], to=TensorProto.DOUBLE))
            compared, edges = as_double, axis.edges.reshape(1, -1)
            if axis.float32:
                compared = f"{name}_float"
                nodes.append(
                    helper.make_node("Cast", [as_double], [compared], to=TensorProto.FLOAT)
                )
                edges = edges.astype(np.float32)
            if edges.size == 0:  # no edge splits valid values: one cell, never above +inf
                edges = np.full((1, 1), np.inf, dtype=edges.dtype)
            nodes += [
                helper.make_node(
                    "Greater", [compared, constant(f"{name}_edges", edges)], [f"{name}_above"]
                ),
                helper.make_node(
                    "Cast", [f"{name}_above"], [f"{name}_above_int"], to=TensorProto.INT64
                ),
                helper.make_node(
                    "ReduceSum",
                    [f"{name}_above_int", constant(f"{name}_axes", np.array([1], np.int64))],
                    [index],
                    keepdims=1,
                ),
            ]
        else:
            categories = grid.categories[name]
            nodes.append(
                helper.make_node(
                    "LabelEncoder",
                    [name],
                    [index],
                    domain="ai.onnx.ml",
                    keys_strings=list(categories),
                    values_int64s=list(range(len(categories))),
                    default_int64=_UNKNOWN_CATEGORY,
                )
            )
        if flat is None:
            flat = index
            continue
        # Row-major flattening, as numpy's ravel_multi_index: flat * size + index.
        size = constant(f"{name}_size", np.array(grid.axis_size(name), np.int64))
        nodes += [
            helper.make_node("Mul", [flat, size], [f"{name}_scaled"]),
            helper.make_node("Add", [f"{name}_scaled", index], [f"{name}_flat"]),
        ]
        flat = f"{name}_flat"
    assert flat is not None
    inputs_count, classes = tables.values.shape[-2:]
    table = tables.values.reshape(grid.cells, inputs_count * classes)
    nodes += [
        helper.make_node("Identity", [flat], [CELL_OUTPUT]),
        helper.make_node("Gather", [constant("table", table), flat], ["gathered"], axis=0),
        helper.make_node(
            "Reshape",
            ["gathered", constant("shape", np.array([-1, inputs_count, classes], np.int64))],
            [VALUES_OUTPUT],
        ),
        helper.make_node("Identity", [constant("base", tables.base_values)], [BASE_VALUES_OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes,
        "drugclf_explainer",
        [
            helper.make_tensor_value_info(spec.name, _TYPES[spec.element_type], [None, 1])
            for spec in input_specs()
        ],
        [
            helper.make_tensor_value_info(
                VALUES_OUTPUT, TensorProto.DOUBLE, [None, inputs_count, classes]
            ),
            helper.make_tensor_value_info(BASE_VALUES_OUTPUT, TensorProto.DOUBLE, [classes]),
            helper.make_tensor_value_info(CELL_OUTPUT, TensorProto.INT64, [None, 1]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(domain, v) for domain, v in OPSET.items()]
    )
    model.ir_version = 8  # what opset 17 needs; onnxruntime reads it
    model.doc_string = (
        "drug-classifier explainer: raw patient fields -> exact Shapley values per input and class"
    )
    onnx.checker.check_model(model)
    return model
