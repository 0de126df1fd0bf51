"""privet infer: call a released model with the stock KServe v2 client (tritonclient)."""

from __future__ import annotations

import csv
import io
import json
import pathlib
from typing import Any

import grpc
import numpy as np
import typer
from rich.table import Table

from privet.governance.errors import InvalidArgument
from privet.services.cli.context import Ctx, ctx_of, emit

__all__ = ["infer_columns", "read_input", "triton_client"]


def triton_client(c: Ctx):
    import tritonclient.grpc as triton

    return triton.InferenceServerClient(
        url=c.home.settings().addresses["inference"], ssl=True, root_certificates=str(c.home.ca_cert),
        private_key=str(c.home.key(c.principal)), certificate_chain=str(c.home.cert(c.principal)),
    )


def read_input(text: str) -> dict[str, list]:
    """--input: JSON (an object of columns, or a list of row objects) when it starts like
    JSON, else the path of a .csv or .json file. Raises InvalidArgument("--input")."""
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        source = pathlib.Path(text)
        try:
            text = source.read_text()
        except OSError as exc:
            raise InvalidArgument("--input", f"neither JSON nor a readable file: {exc.strerror or exc}") from None
        if source.suffix.lower() == ".csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            return {k: [_number(r[k]) for r in rows] for k in rows[0]} if rows else {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument("--input", f"not valid JSON: {exc}") from None
    if isinstance(data, list):
        if not data or not all(isinstance(row, dict) for row in data):
            raise InvalidArgument("--input", "a list must hold one object per row")
        names = list(data[0])
        for i, row in enumerate(data):
            if list(row) != names and set(row) != set(names):
                raise InvalidArgument("--input", f"row {i} has columns {sorted(row)}, row 0 has {sorted(names)}")
        return {k: [row[k] for row in data] for k in names}
    if not isinstance(data, dict):
        raise InvalidArgument("--input", "expected an object of columns or a list of rows")
    return {k: v if isinstance(v, list) else [v] for k, v in data.items()}


def _number(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def _floats(name: str, values: list) -> np.ndarray:
    """A numeric input column, or InvalidArgument naming the input and the row at fault."""
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float):
            try:
                float(v)
            except (TypeError, ValueError):
                raise InvalidArgument(f"--input {name}", f"row {i}: {v!r} is not a number (input {name!r} is numeric)") from None
    return np.array([float(v) for v in values], dtype=np.float64)


def infer_columns(c: Ctx, model: str, version: str, columns: dict[str, list], purpose: str) -> np.ndarray:
    """Class probabilities, one row per input row (`infer_named` also gives the class names)."""
    return infer_named(c, model, version, columns, purpose)[0]


def _input_tensors(meta: dict, columns: dict[str, list]) -> list:
    import tritonclient.grpc as triton

    tensors = []
    for spec in meta["inputs"]:
        values = columns.get(spec["name"])
        if values is None:
            raise InvalidArgument(f"--input {spec['name']}", f"input {spec['name']!r} is missing (the model takes {', '.join(i['name'] for i in meta['inputs'])})")
        if spec["datatype"] == "BYTES":
            t = triton.InferInput(spec["name"], [len(values)], "BYTES")
            t.set_data_from_numpy(np.array([str(v) for v in values], dtype=object))
        else:
            t = triton.InferInput(spec["name"], [len(values)], "FP64")
            t.set_data_from_numpy(_floats(spec["name"], values))
        tensors.append(t)
    return tensors


def infer_named(c: Ctx, model: str, version: str, columns: dict[str, list], purpose: str) -> tuple[np.ndarray, list[str]]:
    import tritonclient.grpc as triton

    client = triton_client(c)
    meta = client.get_model_metadata(model, version, as_json=True)
    tensors = _input_tensors(meta, columns)
    result = client.infer(model, tensors, model_version=version, parameters={"purpose": purpose}, outputs=[triton.InferRequestedOutput("probabilities")])
    probabilities = result.as_numpy("probabilities")
    return probabilities, class_names(result, probabilities.shape[1])


TEXT_OUTPUT = "text_output"


def generate_texts(c: Ctx, model: str, version: str, columns: dict[str, list], purpose: str, *, max_new_tokens: int, sample: bool) -> list[str]:
    """A language model's continuation of each prompt row."""
    import tritonclient.grpc as triton

    client = triton_client(c)
    tensors = _input_tensors(client.get_model_metadata(model, version, as_json=True), columns)
    result = client.infer(model, tensors, model_version=version, outputs=[triton.InferRequestedOutput(TEXT_OUTPUT)],
                          parameters={"purpose": purpose, "max_new_tokens": max_new_tokens, "do_sample": sample})
    return [v.decode() if isinstance(v, bytes) else str(v) for v in result.as_numpy(TEXT_OUTPUT).tolist()]


def class_names(result: Any, n_classes: int) -> list[str]:
    """The class names the server gave with the probabilities (the output's `classes`
    parameter, a JSON list), else class 0..n-1."""
    output = result.get_output("probabilities")
    try:
        names = json.loads(output.parameters["classes"].string_param) if output is not None and "classes" in output.parameters else []
    except ValueError:
        names = []
    return [str(n) for n in names] if len(names) == n_classes else [f"class {i}" for i in range(n_classes)]


def infer(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="NAME or NAME:VERSION (default: the newest released)"),
    input_: str = typer.Option(..., "--input", help="JSON columns or rows, or a .csv/.json file"),
    purpose: str = typer.Option(..., "--purpose", help="why you ask; the policy decides on it"),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="a language model: tokens to write (the policy caps it)"),
    sample: bool = typer.Option(False, "--sample", help="a language model: sample instead of greedy decoding"),
) -> None:
    """Call a released model over the KServe v2 protocol (mTLS, policy checked, audited):
    class probabilities from a classifier, the continuation of each prompt from a language model."""
    from tritonclient.utils import InferenceServerException

    c = ctx_of(ctx)
    name, _, version = model.partition(":")
    try:
        client = triton_client(c)
        if TEXT_OUTPUT in [o["name"] for o in client.get_model_metadata(name, version, as_json=True)["outputs"]]:
            texts = generate_texts(c, name, version, read_input(input_), purpose, max_new_tokens=max_new_tokens, sample=sample)
            table = Table("row", "generated")
            for i, text in enumerate(texts):
                table.add_row(str(i), text)
            emit(c, {"texts": texts}, table)
            return
        probabilities, names = infer_named(c, name, version, read_input(input_), purpose)
    except InferenceServerException as exc:
        if isinstance(exc.__context__, grpc.RpcError):
            raise exc.__context__ from None  # its status and google.rpc details (the policy ids)
        raise RuntimeError(f"{exc.status().removeprefix('StatusCode.')}: {exc.message()}") from None
    table = Table("row", *[f"P({n})" for n in names])
    for i, row in enumerate(probabilities):
        table.add_row(str(i), *[f"{p:.4f}" for p in row])
    emit(c, {"classes": names, "probabilities": probabilities.tolist()}, table)
