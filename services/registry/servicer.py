"""RegistryService: thin translation between messages and governance.registry.

Authorisation per RPC is the interceptor's; the release gates are decided inside
`ModelRegistry`; errors are typed and mapped to statuses by the interceptor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from privet.common.v1 import types_pb2
from privet.governance.errors import InvalidArgument
from privet.governance.identity.principals import Principal
from privet.governance.registry import ModelRecord, ModelRegistry, VersionRecord, VersionSpec
from privet.governance.registry.attest import cited_seqs
from privet.governance.registry.pending import PendingRelease
from privet.governance.runtime import Runtime
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.services.common.identity import caller
from privet.services.common.streams import messages

__all__ = ["RegistryServicer", "spec_from_metadata", "version_message"]

_GUARANTEE_FIELDS = (
    "epsilon", "delta", "noise_multiplier", "sample_rate", "steps", "accountant", "max_grad_norm", "privacy_unit", "target_epsilon",
    "neighbouring_relation", "sgd_epsilon", "sgd_delta",
)
_RELEASE_FIELDS = ("purpose", "mechanism", "epsilon", "delta")
_LINEAGE_FIELDS = ("dataset_id", "dataset_digest", "training_job_id", "code_version", "trained_by", "raw_digest", "masking_profile_digest", "dataset_name", "masking_profile",
                  "base_model", "base_version", "base_digest")


def _ts(micros: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMicroseconds(micros)
    return ts


def _specs(items: list[dict]) -> list[types_pb2.TensorSpec]:
    return [types_pb2.TensorSpec(name=i.get("name", ""), datatype=i.get("datatype", ""), shape=i.get("shape", [])) for i in items]


def spec_from_metadata(meta: registry_pb2.ModelVersionMetadata) -> VersionSpec:
    guarantee = None
    if meta.HasField("guarantee"):
        guarantee = {f: getattr(meta.guarantee, f) for f in _GUARANTEE_FIELDS}
        guarantee["releases"] = [{f: getattr(r, f) for f in _RELEASE_FIELDS} for r in meta.guarantee.releases]
    lineage = {f: getattr(meta.lineage, f) for f in _LINEAGE_FIELDS if getattr(meta.lineage, f)}
    return VersionSpec(
        model_name=meta.model_name,
        architecture=meta.architecture,
        inputs=[{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.inputs],
        outputs=[{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.outputs],
        metrics=dict(meta.metrics),
        lineage=lineage,
        guarantee=guarantee,
        trained_on_personal_data=meta.trained_on_personal_data,
        preprocessing_json=meta.preprocessing_json,
        description=meta.description,
        expected_size=meta.expected_size,
        base_license=meta.base.license,
        base_source=meta.base.source,
    )


def _pending_message(p: PendingRelease) -> registry_pb2.PendingRelease:
    return registry_pb2.PendingRelease(model_name=p.model_name, version=p.version, stage=f"STAGE_{p.stage}", requested_by=p.requested_by,
                                       requested_at=_ts(p.requested_at_us), trained_by=p.trained_by, approved_by=p.approved_by,
                                       waiting_for=p.waiting_for, note=p.note)


def version_message(v: VersionRecord) -> registry_pb2.ModelVersion:
    msg = registry_pb2.ModelVersion(
        id=v.id, model_name=v.model_name, version=v.version, stage=f"STAGE_{v.stage}",
        digest=v.digest, size_bytes=v.size_bytes, architecture=v.architecture, inputs=_specs(v.inputs), outputs=_specs(v.outputs),
        metrics=v.metrics, lineage=types_pb2.Lineage(**{k: v.lineage[k] for k in _LINEAGE_FIELDS if k in v.lineage}),
        has_guarantee=v.guarantee is not None, trained_on_personal_data=v.trained_on_personal_data,
        tensors=[registry_pb2.TensorInfo(name=t["name"], dtype=t["dtype"], shape=t["shape"]) for t in v.tensors],
        preprocessing_json=v.preprocessing_json, created_by=v.created_by, created_at=_ts(v.created_us), requested_by=v.requested_by,
        metric_thresholds=v.thresholds, approvals=[registry_pb2.Approval(principal=a.principal, at=_ts(a.at_us), note=a.note) for a in v.approvals],
        released_by=v.released_by, revoked_reason=v.revoked_reason, erased=v.erased, key_id=v.key_id, description=v.description,
        provenance=v.provenance, training_job_id=v.job_id, personal_declared_by=v.personal_declared_by, team=v.team, attested=bool(v.attestation),
    )
    if v.guarantee is not None:
        msg.guarantee.CopyFrom(types_pb2.DPGuarantee(
            **{k: v.guarantee[k] for k in _GUARANTEE_FIELDS if k in v.guarantee},
            releases=[types_pb2.DPRelease(**{f: r[f] for f in _RELEASE_FIELDS if f in r}) for r in v.guarantee.get("releases") or []],
        ))
    return msg


def _model_message(m: ModelRecord) -> registry_pb2.Model:
    return registry_pb2.Model(name=m.name, owner=m.owner, created_at=_ts(m.created_us), latest_version=m.latest_version, released_version=m.released_version, team=m.team)


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, runtime: Runtime, registry: ModelRegistry | None = None) -> None:
        self._rt = runtime
        self._registry = registry if registry is not None else ModelRegistry(runtime)

    def _who(self, context: grpc.ServicerContext) -> Principal:
        return caller(context, self._rt)

    def CreateModelVersion(self, request_iterator, context):
        who = self._who(context)
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "metadata":
            raise InvalidArgument("metadata", "the first message must carry the version's metadata")
        spec = spec_from_metadata(first.metadata)

        def chunks() -> Iterator[bytes]:
            for message in messages(request_iterator, context, sized=bool(spec.expected_size)):
                if message.WhichOneof("part") != "chunk":
                    raise InvalidArgument("metadata", "metadata may only be sent once, first")
                yield message.chunk

        return version_message(self._registry.create_version(who, spec, chunks()))

    def GetModel(self, request, context):
        return _model_message(self._registry.get_model(request.name, principal=self._who(context)))

    def ListModels(self, request, context):
        models, token = self._registry.list_models(page_size=request.page.page_size, page_token=request.page.page_token, principal=self._who(context))
        return registry_pb2.ListModelsResponse(models=[_model_message(m) for m in models], next_page_token=token)

    def GetModelVersion(self, request, context):
        return version_message(self._registry.get_version(request.name, request.version, request.alias, principal=self._who(context)))

    def ListModelVersions(self, request, context):
        versions, token = self._registry.list_versions(request.name, page_size=request.page.page_size, page_token=request.page.page_token, principal=self._who(context))
        return registry_pb2.ListModelVersionsResponse(versions=[version_message(v) for v in versions], next_page_token=token)

    def DownloadWeights(self, request, context):
        pieces = self._registry.download(self._who(context), request.name, request.version)
        # Hold each piece back until the next one verifies, so the last piece is sent only
        # after the end of the stream and the digest have been checked.
        held: bytes | None = None
        for piece in pieces:
            if held is not None:
                yield registry_pb2.WeightsChunk(data=held)
            held = piece
        if held is not None:
            yield registry_pb2.WeightsChunk(data=held)

    def RequestRelease(self, request, context):
        return version_message(self._registry.request_release(self._who(context), request.name, request.version, thresholds=dict(request.metric_thresholds), note=request.note))

    def ApproveRelease(self, request, context):
        return version_message(self._registry.approve(self._who(context), request.name, request.version, note=request.note))

    def ReleaseModelVersion(self, request, context):
        return version_message(self._registry.release(self._who(context), request.name, request.version))

    def RevokeModelVersion(self, request, context):
        return version_message(self._registry.revoke(self._who(context), request.name, request.version, erase=request.erase, reason=request.reason))

    def SetAlias(self, request, context):
        return version_message(self._registry.set_alias(self._who(context), request.name, request.alias, request.version, reason=request.reason))

    def ListPendingReleases(self, request, context):
        items, token = self._registry.pending_releases(self._who(context), page_size=request.page.page_size, page_token=request.page.page_token)
        return registry_pb2.ListPendingReleasesResponse(releases=[_pending_message(p) for p in items], next_page_token=token)

    def DeclarePersonalData(self, request, context):
        return version_message(self._registry.declare_personal_data(self._who(context), request.name, request.version, personal=request.personal, reason=request.reason))

    def GetAttestation(self, request, context):
        who = self._who(context)
        record, envelope = self._registry.attestation(request.name, request.version, request.alias, principal=who)
        document = json.dumps(self._registry.attestation_document(request.name, record.version)[1]) if request.with_proofs else ""
        return registry_pb2.Attestation(envelope_json=envelope, audit_seqs=cited_seqs(envelope), key_id=self._registry.attestation_key_id(), document_json=document)

    def RotateKeys(self, request, context):
        key_id, count = self._registry.rotate_keys(self._who(context))
        return registry_pb2.RotateKeysResponse(key_id=key_id, rewrapped=count)
