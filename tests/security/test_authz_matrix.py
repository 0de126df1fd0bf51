"""The authorisation matrix: every RPC of every service, called by every default principal
and by a certificate from our CA whose SPIFFE id names nobody, on real servers over mTLS.

The expected decisions are written out here, by hand, from what each role is for (see the
comments in policies/api.cedar): they are not computed by the policy engine, so a policy
edit that widens or narrows a role fails this test until the table is changed with it.
"Allowed" means the call got past the authorisation layer (any status but
PERMISSION_DENIED / UNAUTHENTICATED: an empty request then fails INVALID_ARGUMENT or
NOT_FOUND, which is fine); "denied" means PERMISSION_DENIED naming the deciding policy,
audited as a deny, or UNAUTHENTICATED for the unknown certificate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import grpc
import pytest
from sqlalchemy import func, select

from privet.audit.v1 import audit_pb2
from privet.governance.identity.ca import LocalCA
from privet.governance.identity.spiffe import SpiffeId
from privet.governance.store.tables import AuditEvent
from privet.ingestion.v1 import ingestion_pb2
from privet.kserve.v2 import grpc_predict_v2_pb2
from privet.registry.v1 import registry_pb2
from privet.training.v1 import training_pb2
from tests.helpers import channel, error_info
from tests.security._support import Servers, call_rpc, creds_for, running_servers

# (service descriptor, the server that hosts it)
SERVICE_DESCRIPTORS = [
    (ingestion_pb2.DESCRIPTOR.services_by_name["IngestionService"], "ingestion"),
    (training_pb2.DESCRIPTOR.services_by_name["TrainingService"], "training"),
    (registry_pb2.DESCRIPTOR.services_by_name["RegistryService"], "registry"),
    (audit_pb2.DESCRIPTOR.services_by_name["AuditService"], "registry"),
    (grpc_predict_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"], "inference"),
]


def _api(service) -> str:
    package = service.full_name.split(".")
    return package[1] if package[0] == "privet" else package[0]


# Every RPC, as its Cedar action "<api>.<Rpc>", with its service and the server hosting it.
RPCS = {f"{_api(svc)}.{m.name}": (svc, m, server) for svc, server in SERVICE_DESCRIPTORS for m in svc.methods}

# --- the intent, by hand ------------------------------------------------------------------
# Each RPC in exactly one group (checked below, so a new RPC must be placed before it passes).
INGESTION_READ = {"ingestion.GetDataset", "ingestion.ListDatasets", "ingestion.ReadDataset"}
INGESTION_WRITE = {"ingestion.CreateDataset", "ingestion.PreviewMasking", "ingestion.DeleteDataset"}
TRAINING_READ = {"training.GetJob", "training.ListJobs", "training.WatchJob"}
TRAINING_WRITE = {"training.SubmitJob", "training.CancelJob"}
REGISTRY_READ = {"registry.GetModel", "registry.ListModels", "registry.GetModelVersion", "registry.ListModelVersions", "registry.GetAttestation",
                 "registry.ListPendingReleases"}
REGISTRY_WRITE = {"registry.CreateModelVersion"}
REGISTRY_WEIGHTS = {"registry.DownloadWeights"}
# At this layer the whole release group goes to release managers; who may approve a given
# version (never its requester or trainer, only an approver) is the release gates' call.
REGISTRY_RELEASE = {"registry.RequestRelease", "registry.ApproveRelease", "registry.ReleaseModelVersion", "registry.RevokeModelVersion",
                    "registry.SetAlias"}
REGISTRY_KEYS = {"registry.RotateKeys"}
# Operators only, whatever else a role is granted: what is, or is not, personal data.
PERSONAL_DATA = {"ingestion.DeclarePersonalData", "registry.DeclarePersonalData"}
AUDIT_READ = {"audit.ListEvents", "audit.GetCheckpoint", "audit.GetInclusionProof", "audit.GetConsistencyProof", "audit.ExportEvents", "audit.CheckLog"}
INFERENCE_CALL = {"inference.ServerMetadata", "inference.ModelMetadata", "inference.ModelReady", "inference.ModelInfer",
                  "inference.ModelConfig", "inference.RepositoryIndex"}
# Liveness carries no data: any known principal may ask (an unknown one is refused, audited).
OPEN = {"inference.ServerLive", "inference.ServerReady"}
GROUPS = [INGESTION_READ, INGESTION_WRITE, TRAINING_READ, TRAINING_WRITE, REGISTRY_READ, REGISTRY_WRITE, REGISTRY_WEIGHTS,
          REGISTRY_RELEASE, REGISTRY_KEYS, PERSONAL_DATA, AUDIT_READ, INFERENCE_CALL, OPEN]
EVERYTHING = set().union(*GROUPS)

UNKNOWN = "user/mallory"  # a certificate from our CA for a principal principals.yaml does not list

ALLOWED: dict[str, set[str]] = {
    "user/admin": EVERYTHING,
    # ingests, trains, reads and writes the registry, asks for a release; never approves or publishes
    "user/alice": INGESTION_READ | INGESTION_WRITE | TRAINING_READ | TRAINING_WRITE | REGISTRY_READ | REGISTRY_WRITE
    | REGISTRY_WEIGHTS | {"registry.RequestRelease"} | OPEN,
    # releases; reads the registry, nothing else
    "user/bob": REGISTRY_READ | REGISTRY_RELEASE | OPEN,
    # approves; reads the registry, nothing else
    "user/dana": REGISTRY_READ | {"registry.ApproveRelease"} | OPEN,
    # reads the audit log and metadata everywhere; never data, weights, or any change
    "user/carol": AUDIT_READ | REGISTRY_READ | {"ingestion.GetDataset", "ingestion.ListDatasets"} | TRAINING_READ | OPEN,
    # only calls inference
    "user/app": INFERENCE_CALL | OPEN,
    # services: training reads datasets, fetches released bases (which weights: the ownership
    # policy) and registers models; inference fetches weights
    "service/training": {"ingestion.GetDataset", "ingestion.ReadDataset", "registry.CreateModelVersion"} | REGISTRY_READ | REGISTRY_WEIGHTS | OPEN,
    "service/inference": REGISTRY_READ | REGISTRY_WEIGHTS | OPEN,
    "service/ingestion": OPEN,
    "service/registry": OPEN,
    UNKNOWN: set(),
}
# The auditor's invariant forbids these outright (not merely "not permitted").
AUDITOR_FORBIDDEN = INGESTION_WRITE | TRAINING_WRITE | REGISTRY_WRITE | REGISTRY_RELEASE | REGISTRY_KEYS | REGISTRY_WEIGHTS | PERSONAL_DATA


def expected_denial_policy(principal: str, action: str) -> str:
    forbids = []
    if principal == "user/carol" and action in AUDITOR_FORBIDDEN:
        forbids.append("auditor-read-only")
    if action in PERSONAL_DATA:
        forbids.append("personal-data-declared-by-operator")
    return ",".join(sorted(forbids)) or "default-deny"


CASES = [(p, a) for p in ALLOWED for a in sorted(RPCS)]


def test_the_table_places_every_rpc_exactly_once() -> None:
    assert EVERYTHING == set(RPCS), f"unplaced: {sorted(set(RPCS) - EVERYTHING)}; unknown: {sorted(EVERYTHING - set(RPCS))}"
    assert sum(len(g) for g in GROUPS) == len(EVERYTHING), "an RPC sits in two groups"
    for principal, allowed in ALLOWED.items():
        assert allowed <= set(RPCS), f"{principal}: no such RPC {sorted(allowed - set(RPCS))}"


# --- the servers, once per module ----------------------------------------------------------

@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with running_servers(tmp_path_factory.mktemp("authz") / "home") as servers:
        yield servers


@pytest.fixture(scope="module")
def channel_for(env: Servers) -> Iterator[Callable[[str, str], grpc.Channel]]:
    """channel_for(principal, server): one channel per pair, opened on first use."""
    home = env.runtime.home
    unknown = LocalCA.ensure(home.pki).issue(SpiffeId("user", "mallory"))
    opened: dict[tuple[str, str], grpc.Channel] = {}

    def get(principal: str, server: str) -> grpc.Channel:
        if (principal, server) not in opened:
            if principal == UNKNOWN:
                ch = grpc.secure_channel(env.addresses[server], creds_for(home.ca_cert.read_bytes(), unknown))
            else:
                ch = channel(home, principal.split("/", 1)[1], env.addresses[server])
            opened[(principal, server)] = ch
        return opened[(principal, server)]

    yield get
    for ch in opened.values():
        ch.close()


def _denials(env: Servers, principal: str, action: str) -> int:
    with env.runtime.read() as session:
        query = select(func.count()).select_from(AuditEvent).where(
            AuditEvent.principal == principal, AuditEvent.action == action, AuditEvent.decision == "deny"
        )
        return session.exec(query).scalar_one()


@pytest.mark.parametrize("principal,action", CASES, ids=[f"{p}-{a}" for p, a in CASES])
def test_authorisation_matrix(env: Servers, channel_for: Callable[[str, str], grpc.Channel], principal: str, action: str) -> None:
    service, method, server = RPCS[action]
    before = _denials(env, principal, action)
    result = call_rpc(channel_for(principal, server), service, method, timeout=5)
    if action in ALLOWED[principal]:
        assert result.code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), (
            f"{principal} should get past authorisation for {action}, got {result.code.name}: {result.error and result.error.details()}"
        )
        # An empty request must get a domain answer, not a crash, a hang or a missing handler.
        assert result.code not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED), (
            f"{principal} {action}: {result.code.name}: {result.error and result.error.details()}"
        )
        return
    if principal == UNKNOWN:
        assert result.code == grpc.StatusCode.UNAUTHENTICATED, f"{action}: {result.code.name}"
        expected_ids = ["unauthenticated"]
    else:
        assert result.code == grpc.StatusCode.PERMISSION_DENIED, (
            f"{principal} should be denied {action}, got {result.code.name}: {result.error and result.error.details()}"
        )
        expected_ids = expected_denial_policy(principal, action).split(",")
        assert error_info(result.error)["policy_ids"] == ",".join(expected_ids)
    assert _denials(env, principal, action) == before + 1, "the denial was not audited"
    with env.runtime.read() as session:
        last = session.exec(
            select(AuditEvent).where(AuditEvent.principal == principal, AuditEvent.action == action, AuditEvent.decision == "deny")
            .order_by(AuditEvent.seq.desc()).limit(1)
        ).scalars().one()
    assert json.loads(last.policy_ids) == expected_ids
    assert last.resource == f"api/{action.split('.', 1)[0]}"
