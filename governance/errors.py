"""One typed exception family for the whole domain core.

Services map each class to a gRPC status in one table (`privet.services.common.errors.ERROR_TABLE`);
nothing in `governance/` knows about gRPC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

__all__ = [
    "PrivetError",
    "InvalidArgument",
    "Unauthenticated",
    "PermissionDenied",
    "FailedPrecondition",
    "NotFound",
    "AlreadyExists",
    "ResourceExhausted",
    "DataLoss",
    "Unavailable",
]


class PrivetError(Exception):
    """Base of every error Privet raises on purpose. `message` is safe to show a caller.
    `audited`: the code that raised it has already put the refusal in the audit log, so
    the server's catch-all refusal record (services' refusal audit) must not add another."""

    audited = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def mark_audited(self) -> Self:
        self.audited = True
        return self

    def __reduce__(self) -> tuple[Callable[..., PrivetError], tuple[type[PrivetError], tuple[Any, ...], dict[str, Any]]]:
        # Subclasses take other arguments than `args`: rebuild from the state instead, so an
        # error raised in a worker process arrives whole.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[PrivetError], args: tuple[Any, ...], state: dict[str, Any]) -> PrivetError:
    error = Exception.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class InvalidArgument(PrivetError):
    """Bad input. `field` names the request field (or column, row) at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.description = message


class Unauthenticated(PrivetError):
    """The caller could not be identified (no certificate, no SPIFFE id, unknown principal)."""


class PermissionDenied(PrivetError):
    """A policy decision denied the request. `policy_ids` are the deciding policies
    (empty when nothing permitted it: default deny); `reasons` are plain-word conditions."""

    def __init__(self, message: str, *, policy_ids: tuple[str, ...] = (), reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.policy_ids = tuple(policy_ids)
        self.reasons = tuple(reasons)


class FailedPrecondition(PrivetError):
    """The system is not in the state the operation needs (wrong stage, PII without a rule)."""


class NotFound(PrivetError):
    """The named resource does not exist."""


class AlreadyExists(PrivetError):
    """A resource with that name already exists."""


class ResourceExhausted(PrivetError):
    """A budget, quota or size limit would be exceeded."""


class DataLoss(PrivetError):
    """An integrity check failed: tampered blob, audit log altered behind our back."""


class Unavailable(PrivetError):
    """A dependency (database, audit log, blob store) cannot be written or reached now."""
