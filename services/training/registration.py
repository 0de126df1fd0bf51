"""The training service as a client: datasets in from ingestion, models out to the registry,
both over mTLS as the service's own identity (spiffe://privet.local/service/training)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pyarrow as pa

from privet.common.v1 import types_pb2
from privet.governance.architectures import TextInputs
from privet.governance.architectures.tabular import TabularPreprocessor
from privet.governance.config import Home
from privet.governance.errors import NotFound
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.services.common.client import secure_channel

__all__ = ["SERVICE_IDENTITY", "fetch_dataset", "guarantee_to_proto", "register_model", "CODE_VERSION"]

SERVICE_IDENTITY = "training"
TEXT_OUTPUT = "text_output"  # a causal language model's generated text (KServe v2 BYTES)
CHUNK = 1 << 20
try:
    from importlib.metadata import version as _version

    CODE_VERSION = f"privet {_version('privet')}"
except Exception:
    CODE_VERSION = "privet (unpackaged)"


def fetch_dataset(home: Home, dataset_id: str, columns: list[str]) -> pa.Table:
    """ReadDataset: the masked dataset's Arrow IPC stream, read into a table. By id, never
    by name: a job trains on the dataset it was submitted against or on nothing (a dataset
    deleted and its name reused by other data is NOT_FOUND)."""
    with secure_channel(home, SERVICE_IDENTITY, home.settings().addresses["ingestion"]) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        try:
            data = b"".join(m.arrow_ipc for m in stub.ReadDataset(ingestion_pb2.ReadDatasetRequest(dataset_id=dataset_id, columns=columns), timeout=600))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"the dataset this job was submitted against ({dataset_id}) no longer exists") from None
            raise
    return pa.ipc.open_stream(data).read_all()


def guarantee_to_proto(g: dict) -> types_pb2.DPGuarantee:
    """The composed guarantee's JSON form (governance.privacy.guarantee) as its message."""
    return types_pb2.DPGuarantee(
        epsilon=g["epsilon"], delta=g["delta"], noise_multiplier=g["noise_multiplier"], sample_rate=g["sample_rate"], steps=g["steps"],
        accountant=g["accountant"], max_grad_norm=g["max_grad_norm"], privacy_unit=g["privacy_unit"], target_epsilon=g["target_epsilon"],
        neighbouring_relation=g["neighbouring_relation"], sgd_epsilon=g["sgd_epsilon"], sgd_delta=g["sgd_delta"],
        releases=[types_pb2.DPRelease(**r) for r in g["releases"]],
    )


def _signature(data: Any, table_types: dict[str, str]) -> list[types_pb2.TensorSpec]:
    """One input per feature column: BYTES for text (a text model's one column is text
    whatever the dataset's listing says), FP64 for numbers."""
    text_model = not isinstance(data.preprocessor, TabularPreprocessor)
    specs = []
    for name in data.preprocessor.features:
        text = text_model or table_types.get(name) == "string"
        specs.append(types_pb2.TensorSpec(name=name, datatype="BYTES" if text else "FP64", shape=[-1]))
    return specs


def _served_preprocessor(preprocessor: TabularPreprocessor | TextInputs, dataset: ingestion_pb2.Dataset) -> TabularPreprocessor | TextInputs:
    """The preprocessing a version serves with: the job's, plus the k-anonymity
    generalisation the dataset it trained on recorded for each quasi-identifier, so that a
    raw value at inference is generalised exactly as the training rows were."""
    if isinstance(preprocessor, TabularPreprocessor) and dataset.report.generalisation:
        return preprocessor.generalised(dict(dataset.report.generalisation))
    return preprocessor


def register_model(home: Home, job: Any, spec: dict, result: dict, guarantee: dict, data: Any, weights: bytes) -> int:
    """CreateModelVersion with the weights, signature, DP metrics, lineage and the composed
    DP guarantee (`governance.privacy.guarantee.composed_guarantee`)."""
    g = guarantee
    metrics = {k: float(v) for k, v in result["metrics"].items() if isinstance(v, (int, float)) and v is not None}
    dataset = _dataset(home, job.dataset_id)
    columns = {c.name: {"name": c.name, "type": c.type} for c in dataset.columns}
    metadata = registry_pb2.ModelVersionMetadata(
        model_name=spec["model_name"],
        architecture=spec["arch"],
        inputs=_signature(data, {n: ("string" if c["type"] in ("string", "large_string") else "number") for n, c in columns.items()}),
        outputs=[_output(data)],
        metrics=metrics,
        lineage=types_pb2.Lineage(dataset_id=job.dataset_id, dataset_digest=job.dataset_digest, training_job_id=job.id, code_version=CODE_VERSION, trained_by=job.submitted_by,
                                  **_base_lineage(spec)),
        guarantee=guarantee_to_proto(g),
        trained_on_personal_data=dataset.personal,
        preprocessing_json=json.dumps({"model": result["model"], "preprocessor": _served_preprocessor(data.preprocessor, dataset).to_metadata(),
                                       **({"labels": data.labels.to_metadata()} if data.labels is not None else {})}),
        description=f"trained by job {job.id} on dataset {job.dataset_name}",
        expected_size=len(weights),
    )

    def requests() -> Iterator[registry_pb2.CreateModelVersionRequest]:
        yield registry_pb2.CreateModelVersionRequest(metadata=metadata)
        for i in range(0, len(weights), CHUNK):
            yield registry_pb2.CreateModelVersionRequest(chunk=weights[i : i + CHUNK])

    with secure_channel(home, SERVICE_IDENTITY, home.settings().addresses["registry"]) as channel:
        version = registry_pb2_grpc.RegistryServiceStub(channel).CreateModelVersion(requests(), timeout=120)
    return version.version


def _output(data: Any) -> types_pb2.TensorSpec:
    """What a version answers: class probabilities, or a causal language model's text."""
    if data.labels is None:
        return types_pb2.TensorSpec(name=TEXT_OUTPUT, datatype="BYTES", shape=[-1])
    return types_pb2.TensorSpec(name="probabilities", datatype="FP32", shape=[-1, len(data.labels.classes)])


def _base_lineage(spec: dict) -> dict[str, str]:
    """The base a fine-tuning job trained from, as recorded at submit (the registry checks
    it against the job's record and keeps its own copy)."""
    base = (spec.get("hparams") or {}).get("base")
    if not isinstance(base, dict):
        return {}
    return {"base_model": str(base["model"]), "base_version": str(base["version"]), "base_digest": str(base["digest"])}


def _dataset(home: Home, dataset_id: str) -> ingestion_pb2.Dataset:
    with secure_channel(home, SERVICE_IDENTITY, home.settings().addresses["ingestion"]) as channel:
        return ingestion_pb2_grpc.IngestionServiceStub(channel).GetDataset(ingestion_pb2.GetDatasetRequest(dataset_id=dataset_id), timeout=30)


