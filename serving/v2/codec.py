"""Tensors in, patients out; predictions in, tensors out: JSON and Triton's binary tensor data.

An inference request carries one tensor per feature of the contract (named as its fields), each
of shape ``[N]`` or ``[N, 1]``, with its data inline in the JSON (flat or nested) or, with the
binary tensor data extension, after the JSON header: the ``Inference-Header-Content-Length``
request header gives the header's length, each binary input its ``binary_data_size``; a BYTES
element is a 4-byte little-endian length followed by the bytes.

Nothing here re-states what a value may be: each tensor's elements are checked with the feature
contract's own annotated types (``msgspec.convert`` against ``list[<the Patient field's type>]``),
the checks ``/predict`` runs, and refusals are worded from the contract's rules
(``serving.http.validation.Rule``) in the protocol's way: the tensor, the element index, what
is expected.

The two forms clients send most (five flat inline tensors; one patient as five one-element
binary tensors) are first tried with typed decoders that check everything in one ``msgspec``
call; anything they do not take, refusals included, goes through the general path above. One
patient with its tensors in the contract's order (as the metadata lists them, and as clients
build them from it) is tried before those, with types that leave no per-tensor work to Python.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
import struct
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from drugclf.contract import CLASSES, FIELDS, FIELDS_BY_NAME, Patient
from serving.http.errors import InferenceHeaderError, InvalidTensorError, MalformedBodyError
from serving.http.validation import Rule, shown
from serving.v2.binary import (
    HEADER_LENGTH,
    LENGTH,
    VECTORISED_FROM,
    Vocabulary,
    numbers,
    split_body,
    split_bytes,
)
from serving.v2.schemas import (
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
    ResponseOutput,
)

LABEL: Final = "label"
PROBABILITIES: Final = "probabilities"
OUTPUT_NAMES: Final = (LABEL, PROBABILITIES)
CLASS_ORDER: Final = ",".join(CLASSES)
"""The columns of ``probabilities``, in order (a protocol parameter value is a string)."""

# What each feature's tensor is, by the contract's kind of field.
_DATATYPES: Final = {"integer": ("INT64",), "number": ("FP64", "FP32"), "category": ("BYTES",)}
_CONTENT_TYPES: Final = {"integer": "np", "number": "np", "category": "str"}
_INDEX: Final = re.compile(r" - at `\$\[0\]\[(\d+)\]`$")
_SHARED_MEMORY: Final = "shared_memory_region"
_NOT_SUPPORTED: Final = {
    _SHARED_MEMORY: "shared memory is not supported: send the data in the body",
    "classification": "the classification extension is not supported: ask for probabilities",
}

_ELEMENT_TYPES: Final = typing.get_type_hints(Patient, include_extras=True)
"""Each field's annotated type in the contract (range, literal values): what an element must be."""


@dataclass(frozen=True, slots=True)
class Feature:
    """One input tensor: a field of the contract with its datatypes and checks."""

    name: str
    rule: Rule
    datatypes: tuple[str, ...]
    content_type: str
    elements: Any
    """A one-field array-like Struct of ``list[<the field's contract type>]``: ``convert`` looks a
    class up in its cache by identity, where a ``typing`` type is hashed again on every call
    (most of a one-patient request's decoding)."""
    vocabulary: Vocabulary | None

    @property
    def expected(self) -> str:
        """What the tensor must be, for messages and the metadata."""
        kinds = " or ".join(self.datatypes)
        return f"{kinds}, shape [N] or [N, 1], each element {self.rule.expected}"


def _feature(spec: Any) -> Feature:
    return Feature(
        name=spec.name,
        rule=Rule.of_field(spec),
        datatypes=_DATATYPES[spec.type],
        content_type=_CONTENT_TYPES[spec.type],
        elements=msgspec.defstruct(
            f"{spec.name}Elements",
            [("values", list[_ELEMENT_TYPES[spec.name]])],  # type: ignore[valid-type]
            array_like=True,
            frozen=True,
        ),
        vocabulary=Vocabulary.of(spec.allowed or ()),
    )


FEATURES: Final[dict[str, Feature]] = {spec.name: _feature(spec) for spec in FIELDS}


class _BinaryData(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An output's only parameter in the fast paths: whether it goes as binary data."""

    binary_data: bool


_PlainOutput: Final[Any] = msgspec.defstruct(
    "_PlainOutput",
    [
        ("name", typing.Literal[OUTPUT_NAMES]),
        ("parameters", _BinaryData | None, None),
    ],
    frozen=True,
    forbid_unknown_fields=True,
)
"""An output as clients ask for it: one of ours, at most ``binary_data`` as parameter."""


_FAST_DATATYPES: Final = {
    name: tuple(d for d in f.datatypes if d != "FP32") for name, f in FEATURES.items()
}
"""Each feature's datatypes in the fast paths: FP32 is left to the general path, which checks the
value the model will see after rounding."""
_ALL_OUTPUTS: Final = {
    binary: tuple((name, binary) for name in OUTPUT_NAMES) for binary in (False, True)
}
"""Every output, inline or binary: what a request that names none gets."""


def _typed_request(
    form: str, data_fields: Callable[[str], list[tuple[Any, ...]]], *, forbid_unknown_fields: bool
) -> tuple[Any, dict[Any, str]]:
    """A request type whose inputs decode to per-feature tensor types, and each type's feature.

    Each feature's tensor type is tagged by its ``name`` and carries ``data_fields(name)`` (how
    its data is sent) beside a shape and the feature's datatypes. FP32 is left out: the general
    path checks the value the model will see after rounding.
    """
    tensors = {
        msgspec.defstruct(
            f"{name}{form}",
            [
                ("shape", list[int]),
                ("datatype", typing.Literal[_FAST_DATATYPES[name]]),
                *data_fields(name),
            ],
            tag_field="name",
            tag=name,
            frozen=True,
            forbid_unknown_fields=forbid_unknown_fields,
        ): name
        for name, f in FEATURES.items()
    }
    tensor: Any = typing.Union[tuple(tensors)]  # noqa: UP007 (built from a tuple)
    request = msgspec.defstruct(
        f"{form}Request",
        [
            ("inputs", list[tensor]),
            ("id", str | None, None),
            ("parameters", Parameters | None, None),
            ("outputs", list[_PlainOutput] | None, None),
        ],
        frozen=True,
    )
    return request, tensors


class _BinarySize(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A binary tensor's only parameter."""

    binary_data_size: int


def _inline_data(name: str) -> list[tuple[Any, ...]]:
    return [
        ("data", list[_ELEMENT_TYPES[name]]),  # type: ignore[valid-type]
        ("parameters", Parameters | None, None),
    ]


_InlineRequest, _INLINE_TENSORS = _typed_request(
    "Inline", _inline_data, forbid_unknown_fields=False
)
"""Five flat inline JSON tensors: decoding checks every value with the contract's types."""
_BinaryRequest, _BINARY_TENSORS = _typed_request(
    "Binary", lambda _: [("parameters", _BinarySize)], forbid_unknown_fields=True
)
"""Five tensors sent as binary data, ``binary_data_size`` their only parameter."""
_ONE_SHAPE: Final = typing.Annotated[
    list[typing.Literal[1]], msgspec.Meta(min_length=1, max_length=2)
]
"""One patient's shape: ``[1]`` or ``[1, 1]``."""
_ONE_DATATYPES: Final = {name: datatypes[0] for name, datatypes in _FAST_DATATYPES.items()}
"""The datatype of each feature's tensor in the ordered one-patient paths."""


def _one_patient_request(form: str, data_fields: Callable[[str], list[tuple[Any, ...]]]) -> Any:
    """A one-patient request whose five tensors come in the contract's order, each fully typed.

    What clients send most (the order of the metadata, one element each) is then checked in one
    ``msgspec`` call, with no per-tensor work in Python: the name and datatype are literals, the
    shape ``[1]`` or ``[1, 1]``, and nothing else is allowed.
    """
    tensors = tuple(
        msgspec.defstruct(
            f"{name}{form}One",
            [
                ("name", typing.Literal[name]),
                ("shape", _ONE_SHAPE),
                ("datatype", typing.Literal[_ONE_DATATYPES[name]]),
                *data_fields(name),
            ],
            frozen=True,
            forbid_unknown_fields=True,
        )
        for name in FEATURES
    )
    return msgspec.defstruct(
        f"{form}OneRequest",
        [
            ("inputs", tuple[tensors]),  # type: ignore[valid-type]
            ("id", str | None, None),
            ("parameters", Parameters | None, None),
            ("outputs", list[_PlainOutput] | None, None),
        ],
        frozen=True,
    )


_InlineOneRequest: Final = _one_patient_request(
    "Inline",
    lambda name: [
        (
            "data",
            typing.Annotated[
                list[_ELEMENT_TYPES[name]],  # type: ignore[valid-type]
                msgspec.Meta(min_length=1, max_length=1),
            ],
        )
    ],
)
"""One patient as five inline one-element tensors, in the contract's order."""
_BinaryOneRequest: Final = _one_patient_request("Binary", lambda _: [("parameters", _BinarySize)])
"""One patient as five binary tensors, in the contract's order."""
_ELEMENT_FORMATS: Final = {"INT64": "q", "FP64": "d", "BYTES": "I{}s"}
"""How ``struct`` reads one element of each datatype (BYTES: its length, then the bytes)."""
_TEXT_AT: Final = tuple(i for i, name in enumerate(FEATURES) if _ONE_DATATYPES[name] == "BYTES")
"""The features read as UTF-8 text, by position."""


@dataclass(frozen=True, slots=True)
class _BinaryLayout:
    """Where one patient's elements are in the binary data, for one set of tensor sizes."""

    reader: struct.Struct
    lengths_of: Callable[[tuple[Any, ...]], tuple[int, ...]]
    """Picks what each BYTES element's 4-byte length says out of what ``reader`` read."""
    lengths: tuple[int, ...]
    """What they must say: each tensor's size less the 4 bytes of the length."""
    values_of: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    """Picks the five elements (the texts still bytes) out of what ``reader`` read."""


def _binary_layout(sizes: tuple[int, ...]) -> _BinaryLayout:
    """The layout of five one-element tensors of these ``binary_data_size``s."""
    formats: list[str] = []
    length_at: list[int] = []
    value_at: list[int] = []
    for name, size in zip(FEATURES, sizes, strict=True):
        datatype = _ONE_DATATYPES[name]
        if datatype == "BYTES":  # two items read: the length, then the bytes
            length_at.append(len(formats) + len(length_at))
        value_at.append(len(formats) + len(length_at))
        formats.append(_ELEMENT_FORMATS[datatype].format(size - LENGTH.size))
    return _BinaryLayout(
        reader=struct.Struct("<" + "".join(formats)),
        lengths_of=operator.itemgetter(*length_at),
        lengths=tuple(sizes[i] - LENGTH.size for i in _TEXT_AT),
        values_of=operator.itemgetter(*value_at),
    )


def _binary_layouts() -> dict[tuple[int, ...], _BinaryLayout]:
    """Every layout a valid patient can have, by its tensors' ``binary_data_size``s.

    INT64 and FP64 take 8 bytes; a category takes 4 plus the UTF-8 length of one of its allowed
    values. So the few layouts there are (one per combination of those lengths) are built once
    here, and a request with any other sizes goes on to the next path.
    """
    sizes = [
        sorted({LENGTH.size + len(v.encode()) for v in FIELDS_BY_NAME[name].allowed or ()})
        if _ONE_DATATYPES[name] == "BYTES"
        else [_FP64.size]
        for name in FEATURES
    ]
    return {combination: _binary_layout(combination) for combination in itertools.product(*sizes)}


_FP64: Final = struct.Struct("<d")
"""One FP64 element; an INT64 one has the same 8 bytes."""
_LAYOUTS: Final = _binary_layouts()
_UNREAD: Final = object()
"""What ``_one_element`` returns for data that is not one element of its datatype."""


def _one_element(datatype: str, data: bytes) -> object:
    """The one element of a binary tensor, as the general path reads it, or ``_UNREAD``."""
    if datatype == "BYTES":
        if len(data) < LENGTH.size or LENGTH.unpack_from(data)[0] != len(data) - LENGTH.size:
            return _UNREAD
        try:
            return data[LENGTH.size :].decode()
        except UnicodeDecodeError:
            return _UNREAD
    if len(data) != _FP64.size:
        return _UNREAD
    if datatype == "INT64":
        return int.from_bytes(data, "little", signed=True)
    return _FP64.unpack(data)[0]


def input_metadata() -> list[MetadataTensor]:
    """The model's inputs as the protocol describes them (the first dimension is the batch)."""
    return [
        MetadataTensor(
            name=feature.name,
            datatype=feature.datatypes[0],
            shape=[-1, 1],
            parameters={"content_type": feature.content_type, "expected": feature.expected},
        )
        for feature in FEATURES.values()
    ]


def output_metadata() -> list[MetadataTensor]:
    """The model's outputs: the predicted class, and one probability per class in order."""
    return [
        MetadataTensor(LABEL, "BYTES", [-1], {"content_type": "str", "classes": CLASS_ORDER}),
        MetadataTensor(PROBABILITIES, "FP32", [-1, len(CLASSES)], {"classes": CLASS_ORDER}),
    ]


@dataclass(frozen=True, slots=True)
class Decoded:
    """A valid request: its patients (one per row) and what the answer must hold."""

    patients: list[Patient]
    request_id: str | None
    outputs: tuple[tuple[str, bool], ...]
    """The outputs to send, in order, each with whether it goes as binary data."""


class TensorCodec:
    """Decode inference requests into patients; encode predictions as the protocol's outputs.

    Args:
        max_batch_size: the most patients (``N``) one request may carry, as for ``/predict``.
    """

    def __init__(self, max_batch_size: int) -> None:
        self.max_batch_size = max_batch_size
        self._decoder = msgspec.json.Decoder(InferenceRequest)
        self._inline_decoder = msgspec.json.Decoder(_InlineRequest)
        self._binary_decoder = msgspec.json.Decoder(_BinaryRequest)
        self._inline_one_decoder = msgspec.json.Decoder(_InlineOneRequest)
        self._binary_one_decoder = msgspec.json.Decoder(_BinaryOneRequest)
        self._encoder = msgspec.json.Encoder()
        self._label_bytes = {c: LENGTH.pack(len(c.encode())) + c.encode() for c in CLASSES}

    # --- requests ----------------------------------------------------------------------------

    def decode(self, body: bytes, header_length: str | None) -> Decoded:
        """The patients of a request body (with ``Inference-Header-Content-Length``, if sent).

        Raises:
            MalformedBodyError: the JSON part is empty or not JSON.
            InferenceHeaderError: the header or the binary sizes disagree with the body.
            InvalidTensorError: a tensor is unknown, missing, wrongly typed or shaped, or holds
                a value the feature contract refuses.
        """
        if header_length is None:
            if (inline := self._decode_inline_one(body)) is not None:
                return inline
            if (inline := self._decode_inline(body)) is not None:
                return inline
        header, tail = split_body(body, header_length)
        if tail:
            if (one := self._decode_binary_ordered(header, tail)) is not None:
                return one
            if (one := self._decode_binary_one(header, tail)) is not None:
                return one
        request = self._decode_header(header)
        if request.parameters:
            _check_parameters(request.parameters, "the request", pandas=True)
        columns = self._columns(request.inputs, tail)
        patients = list(map(Patient, *(columns[name] for name in FEATURES)))
        return Decoded(patients, request.id, _outputs(request))

    def _decode_inline_one(self, body: bytes) -> Decoded | None:
        """One patient, five inline tensors in the contract's order: one typed decode.

        The elements are decoded with the contract's types, as in ``_decode_inline``; anything
        else returns ``None`` and goes on to the next path.
        """
        try:
            request = self._inline_one_decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            return None
        return _fast_decoded(request, [Patient(*[tensor.data[0] for tensor in request.inputs])])

    def _decode_binary_ordered(self, header: bytes, tail: bytes) -> Decoded | None:
        """One patient, five binary tensors in the contract's order: read with one ``struct``.

        The elements are read as ``_one_element`` reads them and checked by one strict
        ``msgspec.convert``, as in ``_decode_binary_one``; anything else returns ``None``.
        """
        try:
            request = self._binary_one_decoder.decode(header)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            return None
        layout = _LAYOUTS.get(
            tuple([tensor.parameters.binary_data_size for tensor in request.inputs])
        )
        if layout is None or layout.reader.size != len(tail):
            return None
        read = layout.reader.unpack(tail)
        if layout.lengths_of(read) != layout.lengths:
            return None
        values = list(layout.values_of(read))
        try:
            for i in _TEXT_AT:
                values[i] = values[i].decode()
            patient = msgspec.convert(
                dict(zip(FEATURES, values, strict=True)), Patient, strict=True
            )
        except (UnicodeDecodeError, msgspec.ValidationError):
            return None
        return _fast_decoded(request, [patient])

    def _decode_inline(self, body: bytes) -> Decoded | None:
        """The common request in one typed decode: five flat inline tensors of valid values.

        Decoding with the contract's element types checks every value as ``_checked`` does, so
        a request this accepts gives the same patients as the general path. Anything else
        (nested or binary data, FP32, tensor parameters, a wrong or missing tensor or value)
        returns ``None`` and goes through the general path, which words the refusal.
        """
        try:
            request = self._inline_decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            return None
        columns: dict[str, list[Any]] = {}
        count = len(request.inputs[0].data) if request.inputs else 0
        for tensor in request.inputs:
            name = _INLINE_TENSORS[type(tensor)]
            if (
                name in columns
                or tensor.parameters
                or len(tensor.data) != count
                or tensor.shape not in ([count], [count, 1])
            ):
                return None
            columns[name] = tensor.data
        if len(columns) != len(FEATURES) or not 1 <= count <= self.max_batch_size:
            return None
        return _fast_decoded(request, list(map(Patient, *(columns[name] for name in FEATURES))))

    def _decode_binary_one(self, header: bytes, tail: bytes) -> Decoded | None:
        """One patient's five binary tensors, read without the general path's per-tensor work.

        The elements are read as the general path reads them (little-endian INT64 and FP64, a
        4-byte length and UTF-8 for BYTES) and the patient is checked by one strict
        ``msgspec.convert`` with the contract's types. Anything else returns ``None``.
        """
        try:
            request = self._binary_decoder.decode(header)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            return None
        inputs = request.inputs
        if len(inputs) != len(FEATURES) or sum(
            t.parameters.binary_data_size for t in inputs
        ) != len(tail):
            return None
        values: dict[str, Any] = {}
        offset = 0
        for tensor in inputs:
            name = _BINARY_TENSORS[type(tensor)]
            size = tensor.parameters.binary_data_size
            if name in values or size < 0 or tensor.shape not in ([1], [1, 1]):
                return None
            value = _one_element(tensor.datatype, tail[offset : offset + size])
            if value is _UNREAD:
                return None
            values[name] = value
            offset += size
        try:
            patient = msgspec.convert(values, Patient, strict=True)
        except msgspec.ValidationError:
            return None
        return _fast_decoded(request, [patient])

    def _decode_header(self, header: bytes) -> InferenceRequest:
        try:
            return self._decoder.decode(header)
        except msgspec.ValidationError as exc:
            raise InvalidTensorError(
                f"the body is not an inference request: {_plain(exc)}",
                expected="an inference request object with inputs",
            ) from None
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            reason = "the request body is empty" if not header.strip() else f"not JSON ({exc})"
            raise MalformedBodyError(
                reason if not header.strip() else f"the inference header is {reason}",
                expected="a JSON inference request",
            ) from None

    def _columns(self, inputs: Sequence[RequestInput], tail: bytes) -> dict[str, list[Any]]:
        _check_names([tensor.name for tensor in inputs])
        rows = None
        columns: dict[str, list[Any]] = {}
        offset = 0
        for tensor in inputs:
            feature = FEATURES[tensor.name]
            count = self._check_shape(tensor, feature)
            if rows is not None and count != rows[1]:
                raise InvalidTensorError(
                    f"input '{tensor.name}' has shape {tensor.shape} but input '{rows[0]}' has "
                    f"{rows[2]}: every input holds one element per patient",
                    field=tensor.name,
                    expected=f"shape [{rows[1]}] or [{rows[1]}, 1]",
                )
            rows = (tensor.name, count, tensor.shape)
            size = _binary_size(tensor)
            if size is None:
                values = _flatten(tensor)
            else:
                if offset + size > len(tail):
                    raise InferenceHeaderError(
                        f"input '{tensor.name}' has binary_data_size {size} but only "
                        f"{len(tail) - offset} bytes of binary data are left in the body",
                        field=tensor.name,
                    )
                values, allowed = _from_binary(tensor, feature, tail[offset : offset + size])
                offset += size
                if allowed and len(values) == count:
                    columns[tensor.name] = values  # every element is one of the allowed values
                    continue
            if len(values) != count:
                raise InvalidTensorError(
                    f"input '{tensor.name}' has shape {tensor.shape} ({count} elements) but "
                    f"{len(values)} elements of data",
                    field=tensor.name,
                    expected=f"{count} elements",
                )
            columns[tensor.name] = _checked(tensor, feature, values)
        if offset != len(tail):
            raise InferenceHeaderError(
                f"the body has {len(tail)} bytes after the JSON header but the inputs' "
                f"binary_data_size add up to {offset}",
                field=HEADER_LENGTH,
            )
        return columns

    def _check_shape(self, tensor: RequestInput, feature: Feature) -> int:
        name, shape = tensor.name, tensor.shape
        if tensor.datatype not in feature.datatypes:
            raise InvalidTensorError(
                f"input '{name}' must have datatype {' or '.join(feature.datatypes)} "
                f"(got {shown(tensor.datatype)})",
                field=name,
                expected=" or ".join(feature.datatypes),
            )
        limit = self.max_batch_size
        if not (
            len(shape) in (1, 2) and 1 <= shape[0] <= limit and (len(shape) == 1 or shape[1] == 1)
        ):
            raise InvalidTensorError(
                f"input '{name}' must have shape [N] or [N, 1] with N from 1 to {limit} "
                f"(got {shown(shape)})",
                field=name,
                expected=f"shape [N] or [N, 1], 1 <= N <= {limit}",
            )
        parameters = tensor.parameters
        if parameters and (len(parameters) > 1 or "binary_data_size" not in parameters):
            _check_parameters(parameters, f"input '{name}'", content=feature.content_type)
        return shape[0]

    # --- answers -----------------------------------------------------------------------------

    def encode(
        self,
        decoded: Decoded,
        labels: Sequence[str],
        probabilities: npt.NDArray[np.float32],
        model_name: str,
        model_version: str,
    ) -> tuple[bytes, int | None]:
        """The answer's body, and the JSON header's length when binary outputs follow it.

        Probabilities go out as the graph's float32 values: inline as the shortest decimal that
        reads back as the same float32 (as ``/predict`` writes them), or as their 4 bytes.
        """
        outputs: list[ResponseOutput] = []
        tails: list[bytes] = []
        n = len(labels)
        for name, binary in decoded.outputs:
            if name == LABEL:
                parameters: Parameters = {"content_type": "str"}
                data: list[Any] | bytes = (
                    b"".join(map(self._label_bytes.__getitem__, labels)) if binary else list(labels)
                )
                shape, datatype = [n], "BYTES"
            else:
                parameters = {"classes": CLASS_ORDER}
                rows = np.ascontiguousarray(probabilities, dtype="<f4")
                data = rows.tobytes() if binary else rows.ravel().tolist()
                shape, datatype = [n, len(CLASSES)], "FP32"
            if isinstance(data, bytes):
                tails.append(data)
                parameters["binary_data_size"] = len(data)
                outputs.append(ResponseOutput(name, shape, datatype, parameters))
            else:
                outputs.append(ResponseOutput(name, shape, datatype, parameters, data))
        header = self._encoder.encode(
            InferenceResponse(model_name, model_version, outputs, id=decoded.request_id)
        )
        if not tails:
            return header, None
        return b"".join([header, *tails]), len(header)

    def encode_value(self, value: object) -> bytes:
        """Any other body (metadata, readiness) with the shared encoder."""
        return self._encoder.encode(value)


def _check_names(names: list[str]) -> None:
    """Every feature's tensor, once, and nothing else."""
    for name in names:
        if name not in FEATURES:
            raise InvalidTensorError(
                f"unknown input {shown(name)} (the inputs are {', '.join(FEATURES)})",
                field=name,
            )
        if names.count(name) > 1:
            raise InvalidTensorError(f"input '{name}' is sent twice", field=name)
    for name, feature in FEATURES.items():
        if name not in names:
            raise InvalidTensorError(
                f"input '{name}' is missing (expected {feature.expected})",
                field=name,
                expected=feature.expected,
            )


def _plain(exc: msgspec.ValidationError) -> str:
    # msgspec says "Expected `array`, got `str` - at `$.inputs[0].shape`": kept, quotes dropped.
    text = str(exc).replace("`", "")
    return text[0].lower() + text[1:] if text else "not valid"


def _check_parameters(
    parameters: Parameters, where: str, *, pandas: bool = False, content: str | None = None
) -> None:
    for key, message in _NOT_SUPPORTED.items():
        if key in parameters:
            raise InvalidTensorError(f"{where}: {message}", field=key)
    kind = parameters.get("content_type")
    allowed = ("pd",) if pandas else (content,) if content else ()
    if kind is not None and allowed and kind not in allowed:
        raise InvalidTensorError(
            f"{where}: content_type must be {' or '.join(map(repr, allowed))} (got {shown(kind)})",
            field="content_type",
            expected=" or ".join(str(a) for a in allowed),
        )


def _binary_size(tensor: RequestInput) -> int | None:
    parameters = tensor.parameters or {}
    size = parameters.get("binary_data_size")
    if size is None:
        if tensor.data is None:
            raise InvalidTensorError(
                f"input '{tensor.name}' has no data (neither data nor binary_data_size)",
                field=tensor.name,
            )
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InferenceHeaderError(
            f"input '{tensor.name}': binary_data_size must be a whole number of bytes "
            f"(got {shown(size)})",
            field=tensor.name,
        )
    if tensor.data is not None:
        raise InvalidTensorError(
            f"input '{tensor.name}' has both data and binary_data_size: send one of them",
            field=tensor.name,
        )
    return size


def _flatten(tensor: RequestInput) -> list[Any]:
    """Inline data, flat or nested as the shape says (``[[45], [61]]`` for ``[2, 1]``)."""
    data = tensor.data or []
    if not data or not isinstance(data[0], list):
        return data
    if len(tensor.shape) != 2 or len(data) != tensor.shape[0]:
        raise InvalidTensorError(
            f"input '{tensor.name}': nested data must have one row per element of shape "
            f"{tensor.shape}",
            field=tensor.name,
            expected="flat data, or nested as the shape",
        )
    flat: list[Any] = []
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != 1:
            raise InvalidTensorError(
                f"input '{tensor.name}' row {index}: must be a list of one element "
                f"(got {shown(row)})",
                field=tensor.name,
                index=index,
                expected="a list of one element",
            )
        flat.append(row[0])
    return flat


def _from_binary(tensor: RequestInput, feature: Feature, data: bytes) -> tuple[list[Any], bool]:
    """The elements of a tensor sent as binary data, and whether they are known to be allowed."""
    if tensor.datatype == "BYTES":
        # numpy's fixed cost per call is more than a short loop: few elements take the loop.
        vocabulary = feature.vocabulary if tensor.shape[0] >= VECTORISED_FROM else None
        split = vocabulary.split(data) if vocabulary is not None else None
        if split is not None:
            return split, True
        return split_bytes(tensor.name, data, feature.rule.expected), False
    return numbers(tensor.name, tensor.datatype, data), False


def _checked(tensor: RequestInput, feature: Feature, values: list[Any]) -> list[Any]:
    """``values`` checked with the contract's type of the field; FP32 as the model sees it."""
    checked = _convert(tensor.name, feature, values)
    if tensor.datatype == "FP32":
        # The element is a float32: the model is given that value, so it is that value that
        # must be in range (a tiny positive float32 of the JSON rounds to 0).
        checked = _convert(tensor.name, feature, np.asarray(checked, dtype=np.float32).tolist())
    return checked


def _convert(name: str, feature: Feature, values: list[Any]) -> list[Any]:
    try:
        converted: list[Any] = msgspec.convert([values], feature.elements, strict=True).values
    except msgspec.ValidationError as exc:
        match = _INDEX.search(str(exc))
        index = int(match[1]) if match else None
        value = values[index] if index is not None else None
        got = "" if index is None else f" (got {_shown(value)})"
        where = f"input '{name}'" + (f" element {index}" if index is not None else "")
        raise InvalidTensorError(
            f"{where}: must be {feature.rule.must}{got}",
            field=name,
            index=index,
            expected=feature.rule.expected,
        ) from None
    return converted


def _shown(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN: say it as Python does
    return shown(value)


def _fast_decoded(request: Any, patients: list[Patient]) -> Decoded | None:
    """A fast path's request once its patients are read (None: the general path words it).

    Raises:
        InvalidTensorError: the request's parameters ask for what is not supported.
    """
    if request.parameters:
        _check_parameters(request.parameters, "the request", pandas=True)
    outputs = _plain_outputs(request)
    if outputs is None:
        return None
    return Decoded(patients, request.id, outputs)


def _plain_outputs(request: Any) -> tuple[tuple[str, bool], ...] | None:
    """``_outputs`` for a fast path's request (typed outputs); None: let the general path word it.

    The typed decode already refused unknown outputs and parameters, so what is left to refuse
    here (an output asked for twice, a request-level ``binary_data_output`` that is not a
    boolean) goes back to ``_outputs``, which words the error.
    """
    parameters = request.parameters
    default = parameters.get("binary_data_output", False) if parameters else False
    if not isinstance(default, bool):
        return None
    outputs = request.outputs
    if not outputs:
        return _ALL_OUTPUTS[default]
    chosen = tuple(
        (output.name, default if output.parameters is None else output.parameters.binary_data)
        for output in outputs
    )
    if len(chosen) > 1 and (len(chosen) > len(OUTPUT_NAMES) or chosen[0][0] == chosen[1][0]):
        return None  # an output asked for twice
    return chosen


def _outputs(request: InferenceRequest) -> tuple[tuple[str, bool], ...]:
    parameters = request.parameters or {}
    default = parameters.get("binary_data_output", False)
    if not isinstance(default, bool):
        raise InvalidTensorError(
            f"binary_data_output must be true or false (got {shown(default)})",
            field="binary_data_output",
            expected="true or false",
        )
    if request.outputs is None:
        return tuple((name, default) for name in OUTPUT_NAMES)
    chosen: list[tuple[str, bool]] = []
    for output in request.outputs:
        if output.name not in OUTPUT_NAMES:
            raise InvalidTensorError(
                f"unknown output {shown(output.name)} (the outputs are {', '.join(OUTPUT_NAMES)})",
                field=output.name,
            )
        if any(name == output.name for name, _ in chosen):
            raise InvalidTensorError(
                f"output '{output.name}' is asked for twice", field=output.name
            )
        binary = default
        if output.parameters:
            _check_parameters(output.parameters, f"output '{output.name}'")
            binary = output.parameters.get("binary_data", default)
            if not isinstance(binary, bool):
                raise InvalidTensorError(
                    f"output '{output.name}': binary_data must be true or false "
                    f"(got {shown(binary)})",
                    field=output.name,
                    expected="true or false",
                )
        chosen.append((output.name, binary))
    if not chosen:
        return tuple((name, default) for name in OUTPUT_NAMES)
    return tuple(chosen)
