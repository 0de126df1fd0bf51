"""Errors the crypto recipe raises, beside the family in `governance.errors`."""

from __future__ import annotations

from privet.governance.errors import DataLoss

__all__ = ["WeightsTampered"]


class WeightsTampered(DataLoss):
    """Sealed weights (or their wrapped data key) failed an integrity check.

    Deliberately opaque: the message never says which byte, chunk or tag failed, so a
    caller probing a blob learns nothing beyond "it does not verify".
    """

    def __init__(self, message: str = "sealed weights failed their integrity check") -> None:
        super().__init__(message)
