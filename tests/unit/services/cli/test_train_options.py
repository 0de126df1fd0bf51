"""`privet train`'s declared-parameter options parse into the request, or name the option."""

from __future__ import annotations

import pytest

from privet.governance.errors import InvalidArgument
from privet.services.cli.train_cmds import _bounds, _categories, _classes


def test_declared_options_parse() -> None:
    assert _bounds("age=0:120, spend=-5.5:1e3") == {"age": (0.0, 120.0), "spend": (-5.5, 1000.0)}
    assert _categories("plan=basic|plus|pro,region=eu") == {"plan": ["basic", "plus", "pro"], "region": ["eu"]}
    assert _classes("0, 1,2") == ([0, 1, 2], [])
    assert _classes("churned, stayed") == ([], ["churned", "stayed"])  # a text target's class names
    assert _bounds("") == {} and _categories("") == {} and _classes("") == ([], [])


@pytest.mark.parametrize(("parse", "text", "option"), [
    (_bounds, "age", "--bounds"), (_bounds, "age=1", "--bounds"), (_bounds, "age=a:b", "--bounds"),
    (_categories, "=x", "--categories"),
])
def test_a_malformed_option_is_named(parse, text: str, option: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument) as caught:
        parse(text)
    assert caught.value.field == option
