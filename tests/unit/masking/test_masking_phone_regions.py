"""Phone numbers of other countries, and the numbers that only look like phones (issue 22,
items 2 and 4): domestic formats read in the profile's regions and, failing those, in any
region whose plan they fit; invoice numbers, versions and codes left alone."""

from __future__ import annotations

import pyarrow as pa
import pytest

from privet.governance.errors import InvalidArgument
from privet.governance.masking import parse_profile
from privet.governance.masking.free_text import SCAN_MIN_SCORE, scan, scan_text
from privet.governance.masking.validators import ELSEWHERE, validate_phone
from privet.governance.masking.vectorised import phone_scores

DOMESTIC = {
    "JP": ["03-1234-5678", "06-6941-0351", "090-1234-5678"],
    "IT": ["06 6982 1234", "02 8901 2345", "347 123 4567"],
    "CN": ["138 0013 8000", "010-6552-9988", "021-6321-4567"],
    "GB": ["0131 496 0489", "020 7946 0958", "07911 123456"],
    "BR": ["(11) 98765-4321", "(21) 2555-1234"],
}


@pytest.mark.parametrize(("region", "number"), [(r, n) for r, ns in DOMESTIC.items() for n in ns])
def test_domestic_numbers_of_other_countries_are_phones_under_a_us_profile(region: str, number: str) -> None:
    # A trunk prefix (0…) sends a number to every plan it fits; one without (a Chinese
    # mobile, an Italian mobile) is a possible US number and masked as one in text.
    assert (validate_phone(number, "US") or 0) >= (ELSEWHERE if number.lstrip("(").startswith("0") else SCAN_MIN_SCORE)
    assert (validate_phone(number, region) or 0) >= 0.8  # in their own region, valid outright
    [cell] = scan_text(pa.array([f"call {number} today"]), default_region="US", min_score=SCAN_MIN_SCORE)
    assert [f"call {number} today"[f.start:f.end] for f in cell] == [number]  # whole: no area code left behind


def test_the_profile_names_several_regions() -> None:
    assert parse_profile("regions: [jp, IT]").default_region == "JP,IT"
    assert parse_profile("default_region: GB\nregions: [FR]").default_region == "GB,FR"
    with pytest.raises(InvalidArgument) as err:
        parse_profile("regions: [JP, XX]")
    assert err.value.field == "regions[1]"
    assert validate_phone("03-1234-5678", "US,JP") == 0.8


@pytest.mark.parametrize("text", ["INV-2024-531702", "ORD-4155550100", "120.0.4351.73", "10.0.19045.3570", "SKU/2125551234"])
def test_codes_and_versions_are_not_phones(text: str) -> None:
    assert validate_phone(text, "US") is None
    assert scan(pa.array([f"see {text} please"])).to_pylist() == [f"see {text} please"]


def test_the_vectorised_scores_agree_with_the_validator() -> None:
    texts = [n for ns in DOMESTIC.values() for n in ns] + ["(415) 555-2671", "4155552671", "120.0.4351.73", "2024-531702"]
    for region in ("US", "GB", "US,JP"):
        fast = phone_scores(texts, region)
        for text, got in zip(texts, fast.tolist()):
            if got == got:  # NaN: the validator decides
                want = validate_phone(text, region)
                assert (None if got < 0 else got) == want, (text, region, got, want)


@pytest.mark.parametrize(("text", "kept"), [
    ("Order no. 4532015112830366 shipped", True),       # Luhn-valid, but an order number
    ("Tracking: 4155552671", True),
    ("Bestellnummer: 123456782", True),                 # passes the BSN 11-test by chance
    ("Rechnung Nr. 2024531702", True),
    ("Rechnung Nr. 2024-531702", False),                # written in groups: a label is no excuse
    ("card 4532015112830366", False),
    ("call 415-555-2671 about my order", False),         # a label elsewhere in the sentence is no label
    ("my BSN is 123456782", False),
])
def test_a_label_before_a_number_says_what_it_is(text: str, kept: bool) -> None:
    masked = scan(pa.array([text])).to_pylist()[0]
    assert (masked == text) is kept, masked
    found = scan_text(pa.array([text]), min_score=0.4)[0]
    assert (not found) is kept, found
