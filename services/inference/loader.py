"""Released models, fetched from the registry over gRPC and kept in memory only.

Before any weights are fetched, the version's attestation (issued by the registry at
release, docs/attestation.md) must verify with the registry's attestation key
(keys/attestation.pub) and name this version and its weights' digest; a version whose
attestation is missing or does not verify is refused, and the refusal audited. Weights
come through DownloadWeights as the inference service's own identity, are checked
against that digest, and are never written to disk. A watcher polls the
registry so that a revoked version stops serving within seconds; while the registry cannot
confirm that a version is still RELEASED (down, timing out), it serves for a bounded grace
only, then refuses with UNAVAILABLE until the registry answers again.

A served version checks its inputs against its preprocessing before they join a batch
(`ServedInputs.screen`, which `tensors.request_table` applies): a text value outside a
column's categories — after the k-anonymity generalisation the version records — is counted
(`ModelCache.unknown_categories`, a Prometheus counter), and refused with INVALID_ARGUMENT
naming the input and the value when `[inference] unknown_categories = "refuse"`. Its answers
carry the names of its classes (`ClassProbabilities`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import torch
from prometheus_client import Counter

from privet.governance.architectures import BaseTextPreprocessor, TextInputs, preprocessor_from_metadata
from privet.governance.architectures.finetuned import is_causal_lm
from privet.governance.architectures.models import load_model
from privet.governance.architectures.tabular import ClassLabels, TabularPreprocessor
from privet.governance.attestation.verify import attestation_document, verify_attestation
from privet.governance.audit.log import Event
from privet.governance.config import Home
from privet.governance.errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from privet.governance.identity.spiffe import is_name
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.services.common.bases import use_registry_for_bases
from privet.services.common.client import secure_channel

__all__ = ["ClassProbabilities", "GenerationSettings", "LoadedModel", "ModelCache", "SERVICE_IDENTITY", "ServedInputs", "UNCONFIRMED_POLLS", "UNKNOWN_CATEGORIES"]

log = logging.getLogger("privet.inference")
SERVICE_IDENTITY = "inference"
# How long the watcher waits for the registry's answer about one version.
POLL_TIMEOUT_S = 5.0
# Poll periods a loaded version keeps serving without the registry confirming it is still
# RELEASED; the grace is never shorter than two polls that time out, so that one slow
# answer does not take a model down.
UNCONFIRMED_POLLS = 5
# Prompts a generative model continues in one request (each is generated in turn).
MAX_PROMPTS = 16
# What a text input outside the model's categories gets ([inference] unknown_categories).
UNKNOWN_CATEGORIES = ("allow", "refuse")
MAX_SHOWN = 64  # characters of a caller's value quoted back in a refusal


class ClassProbabilities(np.ndarray):
    """Rows of class probabilities (float32) that keep the names of their classes
    (`classes`) through slicing, so that each request's slice of a batch still names them."""

    classes: tuple[str, ...] = ()

    def __array_finalize__(self, obj: Any) -> None:
        self.classes = getattr(obj, "classes", ())


class ServedInputs(list):
    """A served version's input signature (its TensorSpecs, in order) and `screen`, the
    check of a request's values against the version's preprocessing."""

    def __init__(self, specs: Iterable[Any], screen: Callable[[pa.Table], None]) -> None:
        super().__init__(specs)
        self.screen = screen


@dataclass(frozen=True)
class GenerationSettings:
    """How a generative model writes: at most `max_new_tokens` (the policy caps it),
    greedily or sampled at `temperature` from the `top_p` nucleus."""

    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0

    def generator(self) -> torch.Generator | None:
        """Sampling draws from a fresh seed out of the OS's CSPRNG: nobody can replay it."""
        if not self.do_sample:
            return None
        return torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)


@dataclass
class LoadedModel:
    name: str
    version: int
    digest: str
    stage: str
    epsilon: float
    owner: str
    inputs: list
    outputs: list
    module: torch.nn.Module
    preprocessor: TabularPreprocessor | TextInputs
    labels: ClassLabels | None  # None: a causal language model (text in, text out)
    revoked: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    # When the registry last said this version is RELEASED (ModelCache's clock); 0: never.
    confirmed_at: float = 0.0
    unknown_categories: str = "allow"  # or "refuse" ([inference] unknown_categories)
    # The base model a fine-tuned version runs on (name, version): it serves only while
    # that base stays RELEASED too.
    base: tuple[str, int] | None = None
    count_unknown: Callable[[int], None] = lambda _n: None

    def __post_init__(self) -> None:
        self.inputs = ServedInputs(self.inputs, self.screen)

    def screen(self, table: pa.Table) -> None:
        """Count the text values of `table` outside their column's categories; with
        "refuse", InvalidArgument naming the first such input and value (bounded)."""
        if not isinstance(self.preprocessor, TabularPreprocessor):
            return
        unknown = self.preprocessor.unknown_categories(table)
        if not unknown:
            return
        self.count_unknown(sum(n for n, _ in unknown.values()))
        if self.unknown_categories == "refuse":
            name, (n, value) = next(iter(unknown.items()))
            shown = value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "…"
            raise InvalidArgument(f"inputs.{name}", f"{shown!r} is not one of the categories this model was trained on "
                                                    f"({n} such value{'s' if n > 1 else ''}; the model's metadata lists them)")

    @property
    def generates(self) -> bool:
        """Whether this version writes text (a causal language model) rather than classify."""
        return self.labels is None

    def generate(self, table: pa.Table, settings: GenerationSettings) -> list[str]:
        """Each row's prompt (the version's one text input) continued by the model, one
        generation at a time (greedy, or sampled from a fresh secret seed)."""
        from privet.governance.architectures.pretrained_causal import generate

        if not isinstance(self.preprocessor, BaseTextPreprocessor):
            raise FailedPrecondition(f"{self.name}:{self.version} does not generate text")
        tokenizer = self.preprocessor.tokenizer()
        prompts = self.preprocessor.texts(table)
        if len(prompts) > MAX_PROMPTS:
            raise InvalidArgument(f"inputs.{self.preprocessor.column}", f"at most {MAX_PROMPTS} prompts per request (each is generated in turn)")
        with self.lock, torch.inference_mode():
            return [generate(self.module, tokenizer, prompt, settings.max_new_tokens, do_sample=settings.do_sample,
                             temperature=settings.temperature, top_p=settings.top_p, generator=settings.generator()) for prompt in prompts]

    def predict(self, table: pa.Table) -> ClassProbabilities:
        """Class probabilities (float32) for each row of `table` (one forward pass), named
        by the version's classes."""
        if self.labels is None:
            raise FailedPrecondition(f"{self.name}:{self.version} generates text: it has no classes")
        x = self.preprocessor.transform(table)
        # A text model runs a transformer (attention memory grows with rows × tokens²):
        # forward in slices, exactly as training's evaluation does.
        step = 256 if not isinstance(self.preprocessor, TabularPreprocessor) else max(x.shape[0], 1)
        with torch.inference_mode():
            parts = [torch.softmax(self.module(x[i : i + step]), dim=-1) for i in range(0, x.shape[0], step)]
            out = torch.cat(parts).numpy().astype(np.float32) if parts else np.zeros((0, len(self.labels.classes)), dtype=np.float32)
        named = out.view(ClassProbabilities)
        named.classes = self.labels.names
        return named


def _base_of(spec: Any) -> tuple[str, int] | None:
    """The base version a model's metadata builds it from (None for a model without one)."""
    base = (spec.get("hparams") or {}).get("base") if isinstance(spec, dict) else None
    if not isinstance(base, dict):
        return None
    version = base.get("version")
    if not isinstance(base.get("model"), str) or isinstance(version, bool) or not isinstance(version, int):
        raise InvalidArgument("preprocessing_json", "names its base malformed")
    return base["model"], version


def _checked_version(version: str) -> str:
    """`str.isdigit` accepts "²" and int() of 10^23 overflows the registry's int64: both
    once reached the registry call as an INTERNAL error."""
    if version in ("", "released") or (version.isascii() and version.isdigit() and len(version) <= 18 and int(version) > 0):
        return version
    if version.startswith("@") and is_name(version[1:]):  # an alias a release manager set
        return version
    raise InvalidArgument("model_version", f"{version[:40]!r} is not a version: give a version number, \"released\" or an alias (\"@production\")")


class ModelCache:
    """name:version → LoadedModel; `released` resolves to the newest released version, and
    `@alias` to the version the alias points at (both re-resolved every poll period)."""

    def __init__(self, home: Home, *, poll_s: float = 1.0, unconfirmed_grace_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic, record: Callable[[Event], object] | None = None) -> None:
        self._home = home
        self._record = record  # audits a refusal to load (the service's runtime.record)
        if home is not None:  # (tests drive a cache with a stub registry and no home)
            use_registry_for_bases(home, SERVICE_IDENTITY)  # a fine-tuned version's base, into memory only
        self._poll_s = poll_s
        # Fail closed: a revocation the registry cannot report must not leave a model serving for ever.
        self._grace_s = max(UNCONFIRMED_POLLS * poll_s, 2 * POLL_TIMEOUT_S) if unconfirmed_grace_s is None else unconfirmed_grace_s
        self._clock = clock
        self._unconfirmed: set[tuple[str, int]] = set()  # the watcher's: versions it warned about
        self._models: dict[tuple[str, int], LoadedModel] = {}
        # Versions whose weights or metadata cannot make a model: versions never change, so
        # the answer is kept, never worked out again per request (a bad version must not
        # make every request download and rebuild it).
        self._unloadable: dict[tuple[str, int], FailedPrecondition] = {}
        self._aliases: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="privet-revocation-watch", daemon=True)
        self._channel: grpc.Channel | None = None
        # Registered by whoever serves the metrics (the server's own registry, not the global one).
        self.unknown_categories = Counter("privet_inference_unknown_categories", "Text input values outside the served model's categories "
                                          "(after its generalisation), counted or refused.", registry=None)

    def start(self) -> None:
        self._thread.start()

    def stop(self, _grace: float = 0.0) -> None:
        self._stop.set()

    def _stub(self) -> registry_pb2_grpc.RegistryServiceStub:
        if self._channel is None:
            self._channel = secure_channel(self._home, SERVICE_IDENTITY, self._home.settings().addresses["registry"])
        return registry_pb2_grpc.RegistryServiceStub(self._channel)

    def _describe(self, name: str, version: str) -> registry_pb2.ModelVersion:
        alias = "" if version.isdigit() else (version or "released")
        try:
            return self._stub().GetModelVersion(registry_pb2.GetModelVersionRequest(name=name, version=int(version) if version.isdigit() else 0, alias=alias), timeout=10)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(exc.details()) from None
            raise

    def get(self, name: str, version: str) -> LoadedModel:
        """The loaded model, loading it on first use. FailedPrecondition unless RELEASED;
        InvalidArgument("model_version") unless `version` is "", "released" or a version
        number (ASCII digits, at most 18 of them)."""
        version = _checked_version(version)
        if not version.isdigit():
            # The hot path: "released" resolves from the last answer for up to one poll period
            # (the watcher drops a revoked version sooner than that matters).
            with self._lock:
                resolved = self._aliases.get((name, version or "released"))
            if resolved is not None and resolved[1] > self._clock():
                version = str(resolved[0])
        if version.isdigit():
            with self._lock:
                cached = self._models.get((name, int(version)))
            if cached is not None:
                self._require_serving(cached)
                return cached
        described = self._describe(name, version)
        confirmed_at = self._clock()
        released = described.stage == registry_pb2.STAGE_RELEASED
        if not version.isdigit() and released:
            with self._lock:
                self._aliases[(name, version or "released")] = (described.version, confirmed_at + self._poll_s)
        key = (name, described.version)
        with self._lock:
            cached = self._models.get(key)
            unloadable = self._unloadable.get(key)
        if unloadable is not None:
            raise unloadable
        if not released:
            raise FailedPrecondition(f"{name}:{described.version} is {registry_pb2.Stage.Name(described.stage).removeprefix('STAGE_')}, not RELEASED: it does not serve")
        if cached is not None and not cached.revoked:
            self._confirmed(cached, confirmed_at)  # the registry just said RELEASED
            return cached
        loaded = self._load(described)
        loaded.confirmed_at = confirmed_at
        with self._lock:
            self._models[key] = loaded
        return loaded

    def _require_serving(self, model: LoadedModel) -> None:
        if model.revoked:
            raise FailedPrecondition(f"{model.name}:{model.version} was revoked and no longer serves")
        # Checked here, not only by the watcher: a watcher stuck on a registry that does not
        # answer must not leave the model serving.
        if self._clock() - model.confirmed_at > self._grace_s:
            raise Unavailable(f"{model.name}:{model.version} does not serve: the registry has not confirmed for more than "
                              f"{self._grace_s:g} s that it is still RELEASED; retry later")

    def _verify_attestation(self, v: registry_pb2.ModelVersion) -> None:
        """The registry's signed attestation names this version and these weights, or the
        version is refused (audited): a registry row alone is not enough to serve."""
        try:
            attestation = self._stub().GetAttestation(registry_pb2.GetAttestationRequest(name=v.model_name, version=v.version), timeout=10)
            key = (self._home.keys / "attestation.pub").read_bytes()
            report = verify_attestation(attestation_document(json.loads(attestation.envelope_json), []), attestation_key_pem=key, expect_model=(v.model_name, v.version))
            ok, why = report.ok, report.message
            if ok and (report.statement or {}).get("subject", [{}])[0].get("digest", {}).get("sha256") != v.digest:
                ok, why = False, "the attestation names other weights than the version's"
        except grpc.RpcError as exc:
            ok, why = False, f"no attestation: {exc.details()}"
        except (OSError, ValueError) as exc:
            ok, why = False, f"the attestation cannot be checked: {exc}"
        if ok:
            return
        if self._record is not None:
            self._record(Event(principal=f"service/{SERVICE_IDENTITY}", action="inference.VerifyAttestation", resource=f"model/{v.model_name}/{v.version}",
                               decision="deny", details={"reason": why, "digest": v.digest}))
        raise DataLoss(f"{v.model_name}:{v.version} does not serve: its attestation does not verify ({why})")

    def _load(self, v: registry_pb2.ModelVersion) -> LoadedModel:
        self._verify_attestation(v)
        try:
            return self._build(v)
        except (InvalidArgument, DataLoss) as exc:
            refusal = FailedPrecondition(f"{v.model_name}:{v.version} cannot be served: {exc.message}")
            with self._lock:
                self._unloadable[(v.model_name, v.version)] = refusal
            log.error("%s:%d does not load and will not be retried: %s", v.model_name, v.version, exc.message)
            raise refusal from None

    def _build(self, v: registry_pb2.ModelVersion) -> LoadedModel:
        digest = hashlib.sha256()
        parts = []
        for chunk in self._stub().DownloadWeights(registry_pb2.DownloadWeightsRequest(name=v.model_name, version=v.version), timeout=120):
            digest.update(chunk.data)
            parts.append(chunk.data)
        if digest.hexdigest() != v.digest:
            raise DataLoss(f"weights of {v.model_name}:{v.version} do not match their recorded digest")
        try:
            meta = json.loads(v.preprocessing_json)
            spec, preprocessor = meta["model"], preprocessor_from_metadata(meta["preprocessor"])
            labels = None if is_causal_lm(v.architecture, spec.get("hparams")) else ClassLabels.from_metadata(meta["labels"])
        except (ValueError, KeyError, TypeError, RecursionError):
            raise InvalidArgument("preprocessing_json", "not the metadata a Privet model is served from") from None
        # The base is the one the model is built from (its metadata, which the registry
        # checked against its own record of the base), never the lineage an uploader wrote;
        # it must be RELEASED now, before anything of it is fetched or served.
        base = _base_of(spec)
        if base is not None and not self._base_is_released(base):
            raise FailedPrecondition(f"{v.model_name}:{v.version} does not serve: its base {base[0]}:{base[1]} is not RELEASED")
        module = load_model(v.architecture, spec, b"".join(parts))
        merge = getattr(module, "merge_adapters", None)
        if callable(merge):  # served, never trained again: LoRA folded into its weights
            merge()
        log.info("loaded %s:%d (%s)", v.model_name, v.version, v.digest[:12])
        return LoadedModel(
            name=v.model_name, version=v.version, digest=v.digest, stage="RELEASED", epsilon=v.guarantee.epsilon, owner=v.lineage.trained_by or v.created_by,
            inputs=list(v.inputs), outputs=list(v.outputs), module=module,
            preprocessor=preprocessor, labels=labels, unknown_categories=self._unknown_policy(), count_unknown=self.unknown_categories.inc,
            base=base,
        )

    def _unknown_policy(self) -> str:
        """[inference] unknown_categories as privet.toml says now (checked against its schema
        when the file was read): read at each load, so a version loaded later follows an edit."""
        policy = str(self._home.settings().extra.get("inference", {}).get("unknown_categories", "allow"))
        return "allow" if policy == "allow" else "refuse"  # fail closed on anything else

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models.values())

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            self.poll_once()

    def poll_once(self) -> None:
        """One round of the watcher (its thread runs one every poll period): ask the registry
        about each loaded version; revoke those it no longer releases."""
        for model in self.loaded():
            if not model.revoked:
                self._poll(model)

    def _poll(self, model: LoadedModel) -> None:
        asked_at = self._clock()  # the answer holds from the asking, not from its arrival
        try:
            v = self._stub().GetModelVersion(registry_pb2.GetModelVersionRequest(name=model.name, version=model.version), timeout=POLL_TIMEOUT_S)
            released = v.stage == registry_pb2.STAGE_RELEASED and self._base_released(model)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                self._revoke(model)
            else:
                self._not_confirmed(model, exc.code().name)
            return
        except Exception as exc:
            self._not_confirmed(model, type(exc).__name__)
            return
        if not released:
            self._revoke(model)
        else:
            self._confirmed(model, asked_at)

    def _base_released(self, model: LoadedModel) -> bool:
        """Whether the base a fine-tuned version runs on is still RELEASED (True for none).
        A base that cannot be confirmed raises, like the version's own question."""
        return model.base is None or self._base_is_released(model.base)

    def _base_is_released(self, base: tuple[str, int]) -> bool:
        try:
            described = self._stub().GetModelVersion(registry_pb2.GetModelVersionRequest(name=base[0], version=base[1]), timeout=POLL_TIMEOUT_S)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return bool(described.stage == registry_pb2.STAGE_RELEASED)

    def _revoke(self, model: LoadedModel) -> None:
        model.revoked = True
        model.module = torch.nn.Identity()  # drop the weights from memory
        log.warning("%s:%d is no longer RELEASED: it stops serving", model.name, model.version)

    def _confirmed(self, model: LoadedModel, asked_at: float) -> None:
        model.confirmed_at = max(model.confirmed_at, asked_at)
        if (model.name, model.version) in self._unconfirmed:
            self._unconfirmed.discard((model.name, model.version))
            log.warning("%s:%d is confirmed RELEASED again: it serves again", model.name, model.version)

    def _not_confirmed(self, model: LoadedModel, reason: str) -> None:
        # The weights stay: the version serves again as soon as the registry confirms it.
        key = (model.name, model.version)
        if self._clock() - model.confirmed_at > self._grace_s and key not in self._unconfirmed:
            self._unconfirmed.add(key)
            log.warning("%s:%d: the registry has not confirmed it is RELEASED for more than %.0f s (%s): "
                        "it stops serving until it does", model.name, model.version, self._grace_s, reason)
