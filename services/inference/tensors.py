"""KServe v2 tensors ⇄ Arrow columns, checked against the model's signature (and, for a
served version, its values against the version's preprocessing: `ServedInputs.screen`).

The output stays what tritonclient reads: one FP32 tensor "probabilities" [N, classes]; its
parameters name the classes ("classes": a JSON list of the class labels, in column order)."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pyarrow as pa

from privet.governance.errors import InvalidArgument

__all__ = ["request_table", "probabilities_output", "MAX_ROWS"]

MAX_ROWS = 65536
_NUMERIC = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
_TYPED_FIELD = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT64": "int64_contents", "INT32": "int_contents", "BYTES": "bytes_contents"}


def _decode_bytes(raw: bytes, field: str) -> list[str]:
    """BYTES raw format: each element is a 4-byte little-endian length, then the bytes."""
    out, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise InvalidArgument(field, "truncated BYTES element length")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise InvalidArgument(field, "truncated BYTES element")
        try:
            out.append(raw[pos : pos + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidArgument(field, "BYTES elements must be UTF-8 text") from None
        pos += n
    return out


def _decode_typed(elements, field: str) -> list[str]:
    """BYTES as typed contents: UTF-8 text, refused otherwise (as the raw format is)."""
    try:
        return [b.decode("utf-8") for b in elements]
    except UnicodeDecodeError:
        raise InvalidArgument(field, "BYTES elements must be UTF-8 text") from None


def _rows(shape: list[int], field: str) -> int:
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        if shape[0] < 1 or shape[0] > MAX_ROWS:
            raise InvalidArgument(field, f"batch of {shape[0]} rows is outside 1..{MAX_ROWS}")
        return shape[0]
    raise InvalidArgument(field, f"shape {shape} is not [N] or [N, 1]")


def request_table(request, signature: list) -> pa.Table:
    """One column per signature input. INVALID_ARGUMENT names the input at fault. A
    signature with a `screen` (a served version's `ServedInputs`) checks the values too:
    it counts text values outside their categories and may refuse them."""
    expected = {s.name: s for s in signature}
    given: dict[str, int] = {}
    for i, t in enumerate(request.inputs):
        if t.name in given:
            raise InvalidArgument(f"inputs.{t.name}", "given twice")
        given[t.name] = i
    for name in given:
        if name not in expected:
            raise InvalidArgument(f"inputs.{name}", f"not an input of this model (inputs: {', '.join(expected)})")
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument("raw_input_contents", "give raw contents for every input or for none")
    columns, rows = {}, None
    for name, spec in expected.items():
        field = f"inputs.{name}"
        if name not in given:
            raise InvalidArgument(field, "missing")
        i = given[name]
        tensor = request.inputs[i]
        if raw and tensor.HasField("contents") and any(len(getattr(tensor.contents, f)) for f in _TYPED_FIELD.values()):
            raise InvalidArgument(field, "give its values either as raw_input_contents or as contents, not both")
        n = _rows(list(tensor.shape), field)
        if rows is not None and n != rows:
            raise InvalidArgument(field, f"has {n} rows, other inputs have {rows}")
        rows = n
        if spec.datatype == "BYTES":
            if tensor.datatype != "BYTES":
                raise InvalidArgument(field, f"datatype must be BYTES, got {tensor.datatype}")
            texts = _decode_bytes(raw[i], field) if raw else _decode_typed(tensor.contents.bytes_contents, field)
            column = pa.array(texts, pa.string())
        else:
            dtype = _NUMERIC.get(tensor.datatype)
            if dtype is None:
                raise InvalidArgument(field, f"datatype must be one of {', '.join(_NUMERIC)}, got {tensor.datatype}")
            if raw:
                if len(raw[i]) != n * np.dtype(dtype).itemsize:
                    raise InvalidArgument(field, f"raw contents hold {len(raw[i])} bytes, shape {list(tensor.shape)} needs {n * np.dtype(dtype).itemsize}")
                values = np.frombuffer(raw[i], dtype=np.dtype(dtype).newbyteorder("<"))
            else:
                values = np.asarray(getattr(tensor.contents, _TYPED_FIELD[tensor.datatype]), dtype=dtype)
            floats = values.astype(np.float64)
            if not np.isfinite(floats).all():  # NaN or ±inf: no model was trained on them
                raise InvalidArgument(field, f"value {int(np.flatnonzero(~np.isfinite(floats))[0])} is not a finite number")
            column = pa.array(floats)
        if len(column) != n:
            raise InvalidArgument(field, f"{len(column)} values for shape {list(tensor.shape)}")
        columns[name] = column
    table = pa.table(columns)
    screen = getattr(signature, "screen", None)
    if screen is not None:
        screen(table)
    return table


def probabilities_output(response, probabilities: np.ndarray, classes: tuple[str, ...] | None = None) -> None:
    """The "probabilities" output, FP32 [N, classes] in raw contents; its "classes"
    parameter names each column's class (from `classes`, else the array's own, as a
    `ClassProbabilities` carries them)."""
    out = response.outputs.add()
    out.name, out.datatype = "probabilities", "FP32"
    out.shape.extend(probabilities.shape)
    names = classes if classes is not None else getattr(probabilities, "classes", ())
    if names:
        out.parameters["classes"].string_param = json.dumps(list(names))
    response.raw_output_contents.append(np.ascontiguousarray(probabilities, dtype="<f4").tobytes())


def text_output(response, texts: list[str], name: str = "text_output") -> None:
    """A generative model's text, BYTES [N] in raw contents (each element a 4-byte
    little-endian length, then its UTF-8 bytes, as KServe v2 and tritonclient encode it)."""
    out = response.outputs.add()
    out.name, out.datatype = name, "BYTES"
    out.shape.append(len(texts))
    encoded = [t.encode("utf-8") for t in texts]
    response.raw_output_contents.append(b"".join(struct.pack("<I", len(e)) + e for e in encoded))


def _parameter(request, name: str, kind: str) -> Any:
    """A request parameter of `kind` (int64_param, bool_param, double_param), or None when
    absent. InvalidArgument naming `parameters.<name>` when given as another kind."""
    if name not in request.parameters:
        return None
    value = request.parameters[name]
    given = value.WhichOneof("parameter_choice")
    if given == kind:
        return getattr(value, kind)
    if kind == "double_param" and given == "int64_param":
        return float(value.int64_param)
    if kind == "double_param" and given == "string_param":
        # tritonclient sends no floating-point parameters: a number written as text is one.
        try:
            return float(value.string_param)
        except ValueError:
            raise InvalidArgument(f"parameters.{name}", f"{value.string_param[:32]!r} is not a number") from None
    raise InvalidArgument(f"parameters.{name}", f"expected a {kind.removesuffix('_param')} parameter, got {given or 'nothing'}")


def generation_request(request) -> dict[str, Any]:
    """The generation settings a request asks for (KServe v2 parameters max_new_tokens,
    do_sample, temperature, top_p), each checked: InvalidArgument naming the parameter."""
    settings: dict[str, Any] = {}
    max_new = _parameter(request, "max_new_tokens", "int64_param")
    if max_new is not None:
        if not 0 <= max_new <= 1 << 20:
            raise InvalidArgument("parameters.max_new_tokens", f"a number of new tokens per prompt, 0..{1 << 20} (the policy caps it lower)")
        settings["max_new_tokens"] = int(max_new)
    sample = _parameter(request, "do_sample", "bool_param")
    if sample is not None:
        settings["do_sample"] = bool(sample)
    for name, low, high in (("temperature", 0.0, 100.0), ("top_p", 0.0, 1.0)):
        value = _parameter(request, name, "double_param")
        if value is not None:
            if not (low < value <= high):
                raise InvalidArgument(f"parameters.{name}", f"a number in ({low:g}, {high:g}]")
            settings[name] = float(value)
    return settings
