"""privet infer: call a released model with the stock KServe v2 client (tritonclient)."""

from __future__ import annotations

import csv
import io
import json
import pathlib

import numpy as np
import typer
from rich.table import Table

from privet.services.cli.context import Ctx, ctx_of, emit

__all__ = ["triton_client", "infer_columns"]


def triton_client(c: Ctx):
    import tritonclient.grpc as triton

    return triton.InferenceServerClient(
        url=c.home.settings().addresses["inference"], ssl=True, root_certificates=str(c.home.ca_cert),
        private_key=str(c.home.key(c.principal)), certificate_chain=str(c.home.cert(c.principal)),
    )


def _read_input(text: str) -> dict[str, list]:
    """JSON (an object of columns, or a list of row objects), a CSV file, or a JSON file."""
    source = pathlib.Path(text)
    if source.exists():
        text = source.read_text()
        if source.suffix.lower() == ".csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            return {k: [_number(r[k]) for r in rows] for k in rows[0]} if rows else {}
    data = json.loads(text)
    if isinstance(data, list):
        return {k: [row[k] for row in data] for k in data[0]}
    return {k: v if isinstance(v, list) else [v] for k, v in data.items()}


def _number(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def infer_columns(c: Ctx, model: str, version: str, columns: dict[str, list], purpose: str) -> np.ndarray:
    import tritonclient.grpc as triton

    client = triton_client(c)
    meta = client.get_model_metadata(model, version, as_json=True)
    tensors = []
    for spec in meta["inputs"]:
        values = columns.get(spec["name"])
        if values is None:
            raise typer.BadParameter(f"input {spec['name']!r} is missing (the model takes {', '.join(i['name'] for i in meta['inputs'])})")
        if spec["datatype"] == "BYTES":
            t = triton.InferInput(spec["name"], [len(values)], "BYTES")
            t.set_data_from_numpy(np.array([str(v) for v in values], dtype=object))
        else:
            t = triton.InferInput(spec["name"], [len(values)], "FP64")
            t.set_data_from_numpy(np.array(values, dtype=np.float64))
        tensors.append(t)
    result = client.infer(model, tensors, model_version=version, parameters={"purpose": purpose}, outputs=[triton.InferRequestedOutput("probabilities")])
    return result.as_numpy("probabilities")


def infer(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="NAME or NAME:VERSION (default: the newest released)"),
    input_: str = typer.Option(..., "--input", help="JSON columns or rows, or a .csv/.json file"),
    purpose: str = typer.Option(..., "--purpose", help="why you ask; the policy decides on it"),
) -> None:
    """Call a released model over the KServe v2 protocol (mTLS, policy checked, audited)."""
    from tritonclient.utils import InferenceServerException

    c = ctx_of(ctx)
    name, _, version = model.partition(":")
    try:
        probabilities = infer_columns(c, name, version, _read_input(input_), purpose)
    except InferenceServerException as exc:
        raise RuntimeError(f"{exc.status().removeprefix('StatusCode.')}: {exc.message()}") from None
    table = Table("row", *[f"P(class {i})" for i in range(probabilities.shape[1])])
    for i, row in enumerate(probabilities):
        table.add_row(str(i), *[f"{p:.4f}" for p in row])
    emit(c, {"probabilities": probabilities.tolist()}, table)
