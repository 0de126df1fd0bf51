"""The revocation watcher fails closed: while the registry cannot confirm that a loaded
version is still RELEASED (UNAVAILABLE, DEADLINE_EXCEEDED), the version serves for a bounded
grace only, then gets UNAVAILABLE until the registry answers again; a revocation it does
report still stops the version at once. The real ModelCache, a stub registry, a test clock."""

from __future__ import annotations

import grpc
import pytest
import torch

from privet.governance.errors import FailedPrecondition, Unavailable
from privet.registry.v1 import registry_pb2
from privet.services.common.errors import status_for
from privet.services.inference.loader import LoadedModel, ModelCache

NAME = "customers-mlp"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RegistryError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._code.name


class Registry:
    """GetModelVersion answers with `stage`, or raises `error` (a status code or an exception)."""

    def __init__(self) -> None:
        self.stage = registry_pb2.STAGE_RELEASED
        self.error: grpc.StatusCode | Exception | None = None
        self.asked = 0

    def GetModelVersion(self, request, timeout=None):
        self.asked += 1
        if isinstance(self.error, grpc.StatusCode):
            raise RegistryError(self.error)
        if self.error is not None:
            raise self.error
        return registry_pb2.ModelVersion(model_name=request.name or NAME, version=request.version or 1, stage=self.stage, digest="d")


def _loaded(v: registry_pb2.ModelVersion) -> LoadedModel:
    return LoadedModel(v.model_name, v.version, v.digest, "RELEASED", 1.0, "alice", [], [], torch.nn.Linear(2, 2), None, None)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry() -> Registry:
    return Registry()


def _cache(clock: Clock, registry: Registry, **kwargs: float) -> ModelCache:
    cache = ModelCache(None, poll_s=1.0, clock=clock, **kwargs)
    cache._stub = lambda: registry
    cache._load = _loaded
    return cache


def _polls(cache: ModelCache, clock: Clock, seconds: int) -> None:
    for _ in range(seconds):
        clock.advance(1.0)
        cache.poll_once()


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_a_registry_that_cannot_confirm_stops_the_model_after_the_grace(clock: Clock, registry: Registry,
                                                                         code: grpc.StatusCode) -> None:
    cache = _cache(clock, registry, unconfirmed_grace_s=3.0)
    model = cache.get(NAME, "1")
    registry.error = code
    _polls(cache, clock, 3)
    assert cache.get(NAME, "1") is model  # within the grace: still serves
    _polls(cache, clock, 1)
    with pytest.raises(Unavailable, match="has not confirmed"):
        cache.get(NAME, "1")
    assert not model.revoked and isinstance(model.module, torch.nn.Linear)  # kept, for when the registry answers


def test_the_model_serves_again_once_the_registry_confirms_it(clock: Clock, registry: Registry) -> None:
    cache = _cache(clock, registry, unconfirmed_grace_s=3.0)
    model = cache.get(NAME, "1")
    registry.error = grpc.StatusCode.UNAVAILABLE
    _polls(cache, clock, 10)
    with pytest.raises(Unavailable):
        cache.get(NAME, "1")
    registry.error = None
    _polls(cache, clock, 1)
    assert cache.get(NAME, "1") is model


def test_a_watcher_that_gets_no_answer_at_all_still_fails_closed(clock: Clock, registry: Registry) -> None:
    # A watcher stuck on a registry that never answers confirms nothing: requests check the age.
    cache = _cache(clock, registry, unconfirmed_grace_s=3.0)
    cache.get(NAME, "1")
    clock.advance(3.5)
    with pytest.raises(Unavailable):
        cache.get(NAME, "1")


def test_an_unexpected_error_in_a_poll_counts_as_no_confirmation(clock: Clock, registry: Registry) -> None:
    cache = _cache(clock, registry, unconfirmed_grace_s=3.0)
    cache.get(NAME, "1")
    registry.error = OSError("no route to the registry")
    _polls(cache, clock, 4)  # does not raise: the watcher lives on
    with pytest.raises(Unavailable):
        cache.get(NAME, "1")


@pytest.mark.parametrize("answer", ["revoked", "not-found"])
def test_a_reported_revocation_stops_the_model_at_once(clock: Clock, registry: Registry, answer: str) -> None:
    cache = _cache(clock, registry)
    model = cache.get(NAME, "1")
    if answer == "revoked":
        registry.stage = registry_pb2.STAGE_REVOKED
    else:
        registry.error = grpc.StatusCode.NOT_FOUND
    _polls(cache, clock, 1)
    assert model.revoked and isinstance(model.module, torch.nn.Identity)
    with pytest.raises(FailedPrecondition, match="revoked"):
        cache.get(NAME, "1")


def test_the_default_grace_outlasts_one_poll_that_times_out_but_is_bounded(clock: Clock, registry: Registry) -> None:
    cache = _cache(clock, registry)  # poll every second; a poll times out after 5 s
    model = cache.get(NAME, "1")
    registry.error = grpc.StatusCode.DEADLINE_EXCEEDED
    _polls(cache, clock, 6)
    assert cache.get(NAME, "1") is model
    _polls(cache, clock, 30)
    with pytest.raises(Unavailable):
        cache.get(NAME, "1")


def test_a_model_the_registry_never_confirmed_does_not_serve(clock: Clock, registry: Registry) -> None:
    cache = _cache(clock, registry)
    stray = _loaded(registry_pb2.ModelVersion(model_name=NAME, version=2, digest="d"))
    cache._models[(NAME, 2)] = stray  # confirmed_at 0: never
    with pytest.raises(Unavailable):
        cache.get(NAME, "2")


def test_unconfirmed_is_unavailable_on_the_wire(clock: Clock, registry: Registry) -> None:
    cache = _cache(clock, registry, unconfirmed_grace_s=1.0)
    cache.get(NAME, "1")
    clock.advance(2.0)
    with pytest.raises(Unavailable) as err:
        cache.get(NAME, "1")
    assert status_for(err.value).code == grpc.StatusCode.UNAVAILABLE
