"""One rule for the page tokens every List RPC takes back: only what a list could have
issued (a name or id, a sequence number) is accepted; anything else is INVALID_ARGUMENT on
page.page_token, never a query on the caller's bytes."""

from __future__ import annotations

import pytest

from privet.governance.errors import InvalidArgument
from privet.governance.paging import MAX_TOKEN_CHARS, after_number, after_text, page_size


@pytest.mark.parametrize("token", ["\x00\xff", "a\nb", "x" * (MAX_TOKEN_CHARS + 1)])
def test_a_text_token_no_list_issued_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        after_text(token)
    assert err.value.field == "page.page_token"


@pytest.mark.parametrize("token", ["", "churn", "3f2a9c1e-0000-4000-8000-000000000000"])
def test_names_and_ids_are_tokens(token: str) -> None:
    assert after_text(token) == token


@pytest.mark.parametrize("token", ["-1", "+5", " 5", "5.0", "١٢", "9" * 20, str(2**63)])
def test_a_numeric_token_no_list_issued_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument):
        after_number(token)


def test_numeric_tokens_and_the_first_page() -> None:
    assert after_number("") == -1 and after_number("", first=0) == 0 and after_number("41") == 41


def test_page_sizes() -> None:
    assert page_size(0) == 100 and page_size(5) == 5 and page_size(10**9) == 1000
    with pytest.raises(InvalidArgument):
        page_size(-1)
