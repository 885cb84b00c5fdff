"""The V2 codec without a server: tensors to patients, predictions to tensors, every refusal."""

from __future__ import annotations

import random
import struct
from typing import Any

import msgspec
import numpy as np
import pytest
from tritonclient.http import InferRequestedOutput, InferResult
from tritonclient.utils import serialize_byte_tensor

from drugclf.contract import CLASSES, FEATURE_NAMES, SAMPLE_PATIENT, Patient
from serving.http.errors import InferenceHeaderError, InvalidTensorError, MalformedBodyError
from serving.v2.codec import Decoded, TensorCodec
from tests.v2.support import client_request, columns, infer_inputs

OTHER = Patient(Age=61, Sex="F", BP="LOW", Cholesterol="HIGH", Na_to_K=25.4)
PATIENTS = [SAMPLE_PATIENT, OTHER]
CODEC = TensorCodec(max_batch_size=1000)
DATATYPES = {"Age": "INT64", "Na_to_K": "FP64"}
"""The datatype of each non-BYTES input."""


def tensors(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    """Inline-data inputs, each changed by ``changes[name]`` (``{"drop": True}`` removes it)."""
    found = []
    for name, values in columns(PATIENTS).items():
        datatype = {"Age": "INT64", "Na_to_K": "FP64"}.get(name, "BYTES")
        tensor = {"name": name, "shape": [len(values)], "datatype": datatype, "data": values}
        change = changes.get(name, {})
        if change.get("drop"):
            continue
        tensor.update(change)
        found.append(tensor)
    return found


def decode(body: dict[str, Any] | bytes, header: str | None = None) -> list[Patient]:
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return CODEC.decode(raw, header).patients


def refused(body: dict[str, Any] | bytes, header: str | None = None) -> str:
    with pytest.raises((InvalidTensorError, InferenceHeaderError, MalformedBodyError)) as caught:
        decode(body, header)
    return str(caught.value)


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("ratio", ["FP64", "FP32"])
def test_the_client_s_requests_decode_to_the_patients(binary: bool, ratio: str) -> None:
    body, header = client_request(infer_inputs(PATIENTS, binary=binary, ratio=ratio))
    assert (header is not None) is binary
    patients = decode(body, header)
    if ratio == "FP32":  # the model is given the float32 value
        expected = [
            msgspec.structs.replace(p, Na_to_K=float(np.float32(p.Na_to_K))) for p in PATIENTS
        ]
    else:
        expected = PATIENTS
    assert patients == expected


def test_nested_data_and_shape_n_by_one() -> None:
    inputs = [{**t, "shape": [2, 1], "data": [[v] for v in t["data"]]} for t in tensors()]
    assert decode({"inputs": inputs}) == PATIENTS
    flat_n_by_one = [{**t, "shape": [2, 1]} for t in tensors()]
    assert decode({"inputs": flat_n_by_one}) == PATIENTS


def test_the_pandas_convention_of_mlserver() -> None:
    inputs = tensors(
        Sex={"parameters": {"content_type": "str"}}, BP={"parameters": {"content_type": "str"}}
    )
    assert decode({"parameters": {"content_type": "pd"}, "inputs": inputs}) == PATIENTS
    assert "content_type must be 'pd'" in refused(
        {"parameters": {"content_type": "np"}, "inputs": tensors()}
    )
    message = refused({"inputs": tensors(Sex={"parameters": {"content_type": "base64"}})})
    assert "input 'Sex': content_type must be 'str'" in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"Age": {"data": [45, -5]}},
            "input 'Age' element 1: must be a whole number from 0 to 120 (got -5)",
        ),
        ({"Age": {"data": [45, 45.0]}}, "input 'Age' element 1: must be a whole number"),
        (
            {"Age": {"data": [45, "45"]}},
            'element 1: must be a whole number from 0 to 120 (got "45")',
        ),
        ({"Age": {"data": [True, 45]}}, "input 'Age' element 0"),
        (
            {"BP": {"data": ["HIGH", "VERY HIGH"]}},
            "input 'BP' element 1: must be one of HIGH, LOW, NORMAL (got \"VERY HIGH\")",
        ),
        (
            {"Na_to_K": {"data": [0.0, 1.0]}},
            "input 'Na_to_K' element 0: must be a number greater than 0 and at most 150 (got 0.0)",
        ),
        ({"Na_to_K": {"data": [1.0, 1e300]}}, "input 'Na_to_K' element 1"),
        ({"Na_to_K": {"datatype": "FP32", "data": [1e-50, 1.0]}}, "input 'Na_to_K' element 0"),
        ({"Age": {"datatype": "FP32"}}, "input 'Age' must have datatype INT64 (got \"FP32\")"),
        ({"Na_to_K": {"datatype": "INT64"}}, "must have datatype FP64 or FP32"),
        ({"Sex": {"shape": [2, 2]}}, "input 'Sex' must have shape [N] or [N, 1]"),
        (
            {"Sex": {"shape": [0]}},
            "input 'Sex' must have shape [N] or [N, 1] with N from 1 to 1000",
        ),
        ({"Sex": {"shape": [3]}}, "input 'Sex' has shape [3] but input 'Age' has [2]"),
        (
            {"Age": {"shape": [2], "data": [45]}},
            "input 'Age' has shape [2] (2 elements) but 1 elements of data",
        ),
        (
            {"BP": {"drop": True}},
            "input 'BP' is missing (expected BYTES, shape [N] or [N, 1], each element one of HIGH, LOW, NORMAL)",
        ),
        ({"Age": {"data": None}}, "input 'Age' has no data"),
        ({"Age": {"parameters": {"shared_memory_region": "r"}}}, "shared memory is not supported"),
        (
            {"BP": {"shape": [2, 1], "data": [["HIGH", "LOW"], ["LOW"]]}},
            "input 'BP' row 0: must be a list of one element",
        ),
    ],
)
def test_refusals_name_the_tensor_the_element_and_what_is_expected(
    changes: dict[str, dict[str, Any]], expected: str
) -> None:
    assert expected in refused({"inputs": tensors(**changes)})


def test_unknown_and_repeated_tensors() -> None:
    extra = {"name": "Weight", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}
    assert 'unknown input "Weight" (the inputs are Age, Sex, BP, Cholesterol, Na_to_K)' in refused(
        {"inputs": [*tensors(), extra]}
    )
    assert "input 'Age' is sent twice" in refused({"inputs": [*tensors(), tensors()[0]]})
    outputs = [{"name": "logits"}]
    assert 'unknown output "logits" (the outputs are label, probabilities)' in refused(
        {"inputs": tensors(), "outputs": outputs}
    )
    twice = [{"name": "label"}, {"name": "label"}]
    assert "asked for twice" in refused({"inputs": tensors(), "outputs": twice})
    classify = [{"name": "label", "parameters": {"classification": 2}}]
    assert "classification extension is not supported" in refused(
        {"inputs": tensors(), "outputs": classify}
    )


def test_malformed_bodies() -> None:
    assert "the request body is empty" in refused(b"")
    assert "not JSON" in refused(b"{nope")
    assert "not an inference request" in refused({"inputs": "Age"})
    assert "binary_data_output must be true or false" in refused(
        {"inputs": tensors(), "parameters": {"binary_data_output": "yes"}}
    )


def binary_body() -> tuple[bytes, str]:
    body, header = client_request(infer_inputs(PATIENTS, binary=True))
    assert header is not None
    return body, header


@pytest.mark.parametrize(
    "header", ["abc", "0", "-3", "1e3", "99999999", "1" * 5000, "0" * 5000 + "99999999"]
)
def test_a_header_length_that_is_not_in_the_body_is_refused(header: str) -> None:
    body, _ = binary_body()
    assert "Inference-Header-Content-Length must be the JSON header's length" in refused(
        body, header
    )


def test_binary_sizes_must_add_up_to_the_body() -> None:
    body, header = binary_body()
    assert "bytes after the JSON header but the inputs' binary_data_size add up to" in refused(
        body + b"\0", header
    )
    assert "only" in refused(body[:-1], header)  # the last input runs past the end
    # A header length that cuts the JSON short: what is left is not JSON.
    assert "not JSON" in refused(body, str(int(header) - 5))
    # Binary sizes without the header: the JSON part is the whole body, which is not JSON.
    assert "not JSON" in refused(body)
    json_only = body[: int(header)]
    assert "not a whole number of INT64 elements" in refused(
        json_only.replace(b'"binary_data_size":16', b'"binary_data_size":15')
        + body[int(header) :][:-1],
        header,
    )


def test_binary_bytes_elements_are_checked_one_by_one() -> None:
    age = np.array([45, 61], dtype=np.int64)
    good = {
        "Sex": [b"M", b"F"],
        "BP": [b"HIGH", b"LOW"],
        "Cholesterol": [b"NORMAL", b"HIGH"],
    }

    def body_with(sex: bytes) -> tuple[bytes, str]:
        parts = {
            "Age": age.tobytes(),
            "Sex": sex,
            "BP": serialize_byte_tensor(np.array(good["BP"], dtype=object)).item(),
            "Cholesterol": serialize_byte_tensor(
                np.array(good["Cholesterol"], dtype=object)
            ).item(),
            "Na_to_K": np.array([15.5, 25.4]).tobytes(),
        }
        inputs = [
            {
                "name": name,
                "shape": [2],
                "datatype": {"Age": "INT64", "Na_to_K": "FP64"}.get(name, "BYTES"),
                "parameters": {"binary_data_size": len(data)},
            }
            for name, data in parts.items()
        ]
        header = msgspec.json.encode({"inputs": inputs})
        return header + b"".join(parts.values()), str(len(header))

    def pack(*values: bytes) -> bytes:
        return b"".join(struct.pack("<I", len(v)) + v for v in values)

    assert decode(*body_with(pack(b"M", b"F"))) == PATIENTS
    assert "input 'Sex' element 1: must be one of F, M (got \"X\")" in refused(
        *body_with(pack(b"M", b"X"))
    )
    assert "input 'Sex' element 1: must be one of F, M (got \"\")" in refused(
        *body_with(pack(b"M", b""))
    )
    assert "input 'Sex' element 0: must be one of F, M (got \"M\\u0000\")" in refused(
        *body_with(pack(b"M\0", b"F"))
    )
    assert "input 'Sex' element 1: its length 9 runs past" in refused(
        *body_with(pack(b"M") + struct.pack("<I", 9) + b"F")
    )
    assert "input 'Sex' element 1: its 4-byte length is cut off" in refused(
        *body_with(pack(b"M") + b"\1\0")
    )
    assert "input 'Sex' element 1: must be UTF-8 text" in refused(*body_with(pack(b"M", b"\xff")))
    assert "input 'Sex' has shape [2] (2 elements) but 3 elements" in refused(
        *body_with(pack(b"M", b"F", b"M"))
    )


def answer(outputs: list[InferRequestedOutput] | None, binary_default: bool = False) -> InferResult:
    body, header = client_request(infer_inputs(PATIENTS, binary=False), outputs)
    decoded = CODEC.decode(body, header)
    if binary_default:
        decoded = type(decoded)(decoded.patients, "7", tuple((n, True) for n, _ in decoded.outputs))
    probabilities = np.array([[0.1, 0.2, 0.3, 0.15, 0.25], [0.0, 0.0, 0.0, 0.0, 1.0]], np.float32)
    encoded, length = CODEC.encode(decoded, ["DrugC", "DrugY"], probabilities, "m", "v1")
    return InferResult.from_response_body(encoded, header_length=length)


@pytest.mark.parametrize("binary", [False, True])
def test_answers_read_back_by_the_client_bit_for_bit(binary: bool) -> None:
    outputs = [
        InferRequestedOutput("label", binary_data=binary),
        InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = answer(outputs)
    labels = result.as_numpy("label")
    assert labels is not None
    assert [v.decode() if isinstance(v, bytes) else v for v in labels.tolist()] == [
        "DrugC",
        "DrugY",
    ]
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None and probabilities.dtype == np.float32
    expected = np.array([[0.1, 0.2, 0.3, 0.15, 0.25], [0.0, 0.0, 0.0, 0.0, 1.0]], np.float32)
    assert probabilities.shape == (2, len(CLASSES))
    assert probabilities.tobytes() == expected.tobytes()
    response = result.get_response()
    assert response["model_version"] == "v1"
    assert result.get_output("probabilities")["parameters"]["classes"] == ",".join(CLASSES)


def test_a_subset_of_outputs_and_the_request_default() -> None:
    only = answer([InferRequestedOutput("probabilities", binary_data=False)])
    assert [o["name"] for o in only.get_response()["outputs"]] == ["probabilities"]
    everything = answer(None, binary_default=True)
    response = everything.get_response()
    assert response["id"] == "7"
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])


def test_large_binary_bytes_tensors_take_the_vectorised_split() -> None:
    many = [SAMPLE_PATIENT, OTHER] * 50  # 100 patients: above VECTORISED_FROM
    body, header = client_request(infer_inputs(many, binary=True))
    assert decode(body, header) == many
    wrong = [*many[:70], msgspec.structs.replace(OTHER, BP="HIGHER"), *many[71:]]
    body, header = client_request(infer_inputs(wrong, binary=True))
    assert "input 'BP' element 70: must be one of HIGH, LOW, NORMAL (got \"HIGHER\")" in refused(
        body, header
    )


def _general(raw: bytes) -> Any:
    """The general path's reading: a header length of the whole body skips the inline one."""
    return CODEC.decode(raw, str(len(raw)))


def _random_patients(count: int, seed: int) -> list[Patient]:
    rng = np.random.default_rng(seed)
    return [
        msgspec.convert(
            {
                "Age": int(rng.integers(0, 121)),
                "Sex": str(rng.choice(["F", "M"])),
                "BP": str(rng.choice(["HIGH", "LOW", "NORMAL"])),
                "Cholesterol": str(rng.choice(["HIGH", "NORMAL"])),
                "Na_to_K": float(rng.choice([rng.uniform(0.001, 150), 150.0, 7, 1e-9])),
            },
            Patient,
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("seed", range(6))
def test_the_inline_path_reads_valid_requests_as_the_general_path_does(seed: int) -> None:
    patients = _random_patients([1, 2, 50, 1000, 3, 1][seed], seed)
    rng = np.random.default_rng(seed)
    inputs = []
    for name, values in columns(patients).items():
        datatype = {"Age": "INT64", "Na_to_K": "FP64"}.get(name, "BYTES")
        shape = [len(values), 1] if rng.random() < 0.5 else [len(values)]
        inputs.append({"name": name, "shape": shape, "datatype": datatype, "data": values})
    rng.shuffle(inputs)
    body: dict[str, Any] = {"inputs": inputs}
    if seed % 2:
        body |= {"id": f"r-{seed}", "outputs": [{"name": "probabilities"}]}
    if seed == 3:
        body["parameters"] = {"content_type": "pd", "binary_data_output": True}
    raw = msgspec.json.encode(body)
    inline = CODEC._decode_inline(raw)
    assert inline is not None
    assert inline == _general(raw) == CODEC.decode(raw, None)
    assert inline.patients == patients
    # The one-patient path takes one patient in the contract's order, and reads it the same.
    in_order = [tensor["name"] for tensor in inputs] == list(FEATURE_NAMES)
    one = CODEC._decode_inline_one(raw)
    assert (one is not None) == (len(patients) == 1 and in_order)
    assert one is None or one == inline


@pytest.mark.parametrize("seed", range(6))
def test_one_inline_patient_in_order_is_read_as_the_general_path_reads_it(seed: int) -> None:
    [patient] = _random_patients(1, seed + 10)
    outputs = [InferRequestedOutput("label", binary_data=bool(seed % 2))] if seed % 3 else None
    inputs = infer_inputs([patient], binary=False, nested=seed % 2 == 0)
    body, header = client_request(inputs, outputs, f"r{seed}")
    assert header is None
    one = CODEC._decode_inline_one(body)
    assert one is not None
    assert one.patients == [patient]
    assert one == _general(body) == CODEC.decode(body, None)


@pytest.mark.parametrize(
    "changes",
    [
        {"Age": {"shape": [2, 1], "data": [[45], [61]]}},  # nested
        {"Na_to_K": {"datatype": "FP32"}},  # checked after rounding to float32
        {"Sex": {"parameters": {"content_type": "str"}}},
        {"Sex": {"shape": [3]}},
        {"Age": {"data": [45]}},
        {"BP": {"drop": True}},
        {"BP": {"data": ["HIGH", "VERY HIGH"]}},
        {"Age": {"data": [45, 45.0]}},
        {"Age": {"datatype": "FP64"}},
    ],
)
def test_the_inline_path_leaves_everything_else_to_the_general_one(
    changes: dict[str, dict[str, Any]],
) -> None:
    raw = msgspec.json.encode({"inputs": tensors(**changes)})
    assert CODEC._decode_inline(raw) is None
    assert CODEC._decode_inline_one(raw) is None


@pytest.mark.parametrize(
    "body",
    [
        {"outputs": [{"name": "label"}, {"name": "label"}]},
        {"outputs": [{"name": "score"}]},
        {"outputs": [{"name": "label", "parameters": {"binary_data": "yes"}}]},
        {"outputs": [{"name": "label", "parameters": {"classification": 2}}]},
        {"parameters": {"binary_data_output": 1}},
        {
            "inputs": [
                {"name": "Cholesterol", "shape": [1], "datatype": "BYTES", "data": ["NORMAL"]}
            ]
        },
    ],
)
def test_the_fast_paths_leave_odd_outputs_and_orders_to_the_general_one(
    body: dict[str, Any],
) -> None:
    inputs = [
        {"name": name, "shape": [1], "datatype": DATATYPES.get(name, "BYTES"), "data": values}
        for name, values in columns([SAMPLE_PATIENT]).items()
    ]
    plain = msgspec.json.encode({"inputs": inputs, "outputs": [{"name": "label"}]})
    assert CODEC._decode_inline_one(plain) is not None  # so each None below is the change's
    if "inputs" in body:  # the contract's order, but one tensor moved to the front
        inputs = [*body.pop("inputs"), *(t for t in inputs if t["name"] != "Cholesterol")]
    raw = msgspec.json.encode({"inputs": inputs, **body})
    assert CODEC._decode_inline_one(raw) is None
    if body:  # the outputs or parameters: refused, in the general path's words
        assert CODEC._decode_inline(raw) is None
        with pytest.raises(InvalidTensorError):
            CODEC.decode(raw, None)
    else:  # another order: the union path reads it
        assert CODEC._decode_inline(raw) == CODEC.decode(raw, None)
        assert CODEC.decode(raw, None).patients == [SAMPLE_PATIENT]


def test_the_inline_path_leaves_repeated_tensors_and_large_batches_to_the_general_one() -> None:
    twice = msgspec.json.encode({"inputs": [*tensors(), tensors()[0]]})
    assert CODEC._decode_inline(twice) is None
    assert "input 'Age' is sent twice" in refused(twice)
    small = TensorCodec(max_batch_size=1)
    assert small._decode_inline(msgspec.json.encode({"inputs": tensors()})) is None


@pytest.mark.parametrize("seed", range(8))
def test_one_binary_patient_is_read_as_the_general_path_reads_it(seed: int) -> None:
    [patient] = _random_patients(1, seed)
    outputs = [InferRequestedOutput("label", binary_data=True)] if seed % 2 else None
    body, header = client_request(
        infer_inputs([patient], binary=True, nested=seed % 3 == 0), outputs, f"r{seed}"
    )
    assert header is not None
    json_part, tail = body[: int(header)], body[int(header) :]
    fast = CODEC._decode_binary_one(json_part, tail)
    assert fast is not None
    assert CODEC._decode_binary_ordered(json_part, tail) == fast  # the contract's order
    general = CODEC._decoder.decode(json_part)
    assert fast.patients == [patient]
    read = CODEC._columns(general.inputs, tail)
    assert fast == Decoded(
        list(map(Patient, *(read[name] for name in FEATURE_NAMES))), general.id, fast.outputs
    )
    assert CODEC.decode(body, header) == fast


@pytest.mark.parametrize(
    "change",
    ["two patients", "FP32", "Age out of range", "BP not allowed", "length cut", "a tensor twice"],
)
def test_the_one_binary_patient_path_leaves_everything_else_to_the_general_one(
    change: str,
) -> None:
    patients: list[Any] = [SAMPLE_PATIENT, OTHER] if change == "two patients" else [SAMPLE_PATIENT]
    if change == "Age out of range":
        patients = [msgspec.structs.replace(SAMPLE_PATIENT, Age=300)]
    if change == "BP not allowed":
        patients = [{**msgspec.to_builtins(SAMPLE_PATIENT), "BP": "VERY"}]
    inputs = infer_inputs(patients, binary=True, ratio="FP32" if change == "FP32" else "FP64")
    if change == "a tensor twice":
        inputs = [*inputs, inputs[0]]
    body, header = client_request(inputs)
    assert header is not None
    json_part, tail = body[: int(header)], body[int(header) :]
    if change == "length cut":
        tail = tail[:-1]
    assert CODEC._decode_binary_one(json_part, tail) is None
    assert CODEC._decode_binary_ordered(json_part, tail) is None


def _mutated(body: bytes, rng: random.Random) -> bytes:
    """``body`` with a few bytes changed, dropped or added (JSON punctuation and digits)."""
    changed = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        at, how = rng.randrange(len(changed)), rng.random()
        if how < 0.4:
            changed[at] = rng.randrange(256)
        elif how < 0.7:
            del changed[at]
        else:
            changed.insert(at, rng.choice(b'0123456789-[]{}",:e.\x00'))
    return bytes(changed)


@pytest.mark.parametrize("binary", [False, True])
def test_the_fast_paths_take_only_what_the_general_one_reads_the_same(binary: bool) -> None:
    body, header = client_request(infer_inputs([SAMPLE_PATIENT], binary=binary), None, "r1")
    rng = random.Random(7)
    taken = 0
    for _ in range(3000):
        mutated = _mutated(body, rng)
        if binary:
            assert header is not None
            json_part, tail = mutated[: int(header)], mutated[int(header) :]
            fast = CODEC._decode_binary_one(json_part, tail) if tail else None
            ordered = CODEC._decode_binary_ordered(json_part, tail) if tail else None
        else:
            fast = CODEC._decode_inline(mutated)
            ordered = CODEC._decode_inline_one(mutated)
        assert ordered is None or ordered == fast  # what the ordered path takes, both take
        try:
            decoded = CODEC.decode(mutated, header)
        except (InvalidTensorError, InferenceHeaderError, MalformedBodyError):
            assert fast is None
            continue
        if fast is None:
            continue
        taken += 1
        if binary:
            request = CODEC._decoder.decode(json_part)
            read = CODEC._columns(request.inputs, tail)
            patients = list(map(Patient, *(read[name] for name in FEATURE_NAMES)))
            assert (fast.patients, fast.request_id) == (patients, request.id)
        else:
            assert fast == _general(mutated)
        assert decoded == fast
    assert taken  # some mutations stay valid (a digit for a digit): the comparison ran


@pytest.mark.parametrize("sex", ["F", "M"])
def test_every_valid_category_combination_takes_the_ordered_binary_path(sex: str) -> None:
    """The ordered path's layouts are built at import, one per combination of value lengths."""
    for bp in ("HIGH", "LOW", "NORMAL"):
        for cholesterol in ("HIGH", "NORMAL"):
            patient = msgspec.convert(
                {"Age": 33, "Sex": sex, "BP": bp, "Cholesterol": cholesterol, "Na_to_K": 9.25},
                Patient,
            )
            body, header = client_request(infer_inputs([patient], binary=True))
            assert header is not None
            ordered = CODEC._decode_binary_ordered(body[: int(header)], body[int(header) :])
            assert ordered is not None
            assert ordered.patients == [patient]


@pytest.mark.parametrize("ratio", [float("nan"), float("inf"), -1.0])
def test_a_ratio_out_of_the_contract_in_binary_is_refused_by_name(ratio: float) -> None:
    bad = {**msgspec.to_builtins(SAMPLE_PATIENT), "Na_to_K": ratio}
    body, header = client_request(infer_inputs([bad], binary=True))
    assert header is not None
    assert CODEC._decode_binary_ordered(body[: int(header)], body[int(header) :]) is None
    assert "input 'Na_to_K' element 0" in refused(body, header)
