"""The bodies of the Open Inference Protocol (V2) REST routes, as msgspec Structs.

Field names and meanings are the protocol's (``open_inference_rest.yaml`` of the specification):
clients such as ``tritonclient`` read them as they are. Parameters are the protocol's open
``{name: string | number | boolean}`` objects; the ones this server reads are listed in
docs/v2.md.
"""

from __future__ import annotations

from typing import Any

import msgspec

Parameters = dict[str, Any]
"""A protocol ``parameters`` object (values are strings, numbers or booleans)."""


class ServerMetadataResponse(msgspec.Struct, frozen=True):
    """``GET /v2``: who the server is and which protocol extensions it speaks."""

    name: str
    version: str
    extensions: list[str]


class LiveResponse(msgspec.Struct, frozen=True):
    """``GET /v2/health/live``: the process answers."""

    live: bool


class ReadyResponse(msgspec.Struct, frozen=True):
    """``GET /v2/health/ready``: a model is loaded and answers."""

    ready: bool


class ModelReadyResponse(msgspec.Struct, frozen=True):
    """``GET /v2/models/{name}[/versions/{version}]/ready``: that model can answer now."""

    name: str
    ready: bool
    version: str | None = None


class MetadataTensor(msgspec.Struct, frozen=True, omit_defaults=True):
    """A tensor the model takes or gives: ``-1`` marks the variable (batch) dimension."""

    name: str
    datatype: str
    shape: list[int]
    parameters: Parameters | None = None


class ModelMetadataResponse(msgspec.Struct, frozen=True):
    """``GET /v2/models/{name}[/versions/{version}]``: the model's name, versions and tensors."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class RequestInput(msgspec.Struct, frozen=True):
    """One input tensor: its data inline (flat or nested), or binary after the JSON header."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None


class RequestOutput(msgspec.Struct, frozen=True):
    """An output the client asks for (``parameters.binary_data``: send it as binary data)."""

    name: str
    parameters: Parameters | None = None


class InferenceRequest(msgspec.Struct, frozen=True):
    """``POST /v2/models/{name}[/versions/{version}]/infer``: one tensor per feature."""

    inputs: list[RequestInput]
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[RequestOutput] | None = None


class ResponseOutput(msgspec.Struct, frozen=True, omit_defaults=True):
    """One output tensor: ``data`` inline, or ``binary_data_size`` bytes after the JSON."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """The answer to an inference request: ``model_version`` names who answered."""

    model_name: str
    model_version: str
    outputs: list[ResponseOutput]
    id: str | None = None
    parameters: Parameters | None = None
