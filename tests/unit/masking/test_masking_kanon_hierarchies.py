"""Generalisation hierarchies: derived from the data for every kind of column, parsed from
profiles (bins, prefix, date with day and decade, category trees), and refused with the
field named when a profile entry is wrong."""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pytest

from privet.governance.errors import InvalidArgument
from privet.governance.masking import Hierarchy, parse_profile
from privet.governance.masking.hierarchy_defaults import derive_hierarchy

REGIONS = {"Europe": {"West": ["France", "Spain"], "Central": ["Germany"]}, "Asia": ["Japan", "China"]}


# --- derived from the data -------------------------------------------------------------------

@pytest.mark.parametrize(("values", "expected"), [
    (pa.array(range(18, 91)), Hierarchy("bins", (5, 10, 20, 40, 80))),        # ages: 5-year bands and up
    (pa.array([0.0, 0.37]), Hierarchy("bins", (0.02, 0.04, 0.08, 0.16, 0.32))),
    (pa.array([3, 4, 5, 6]), Hierarchy("bins", (2, 4))),                        # bands of 1 would be the values
    (pa.array([5, 5, None]), Hierarchy("suppress")),                            # nothing to band
    (pa.array(["02290", "10001", None]), Hierarchy("prefix", (4, 3, 2, 1))),  # zips: every prefix
    (pa.array(["SW1A 1AA", "M1 1AE"]), Hierarchy("prefix", (7, 6, 5, 4, 3, 2, 1))),
    (pa.array(["1985-03-12", "2001-07-01"]), Hierarchy("date", ("month", "year", "decade"))),
    (pa.array([datetime.date(1985, 3, 12)]), Hierarchy("date", ("month", "year", "decade"))),
    (pa.array([datetime.datetime(1985, 3, 12, 10, 30)]), Hierarchy("date", ("day", "month", "year", "decade"))),
    (pa.array(["F", "M", "X"]), Hierarchy("suppress")),                         # categories need a tree
    (pa.array(["x" * 20 + "1"]), Hierarchy("suppress")),                        # too long to be a code
    (pa.array([True, False]), Hierarchy("suppress")),
])
def test_derived_hierarchy_for_each_kind_of_column(values, expected):
    assert derive_hierarchy(values) == expected
    assert derive_hierarchy(pa.chunked_array([values])) == expected


def test_derived_prefixes_keep_leading_zeros():
    h = derive_hierarchy(pa.array(["02290", "10001"]))
    zips = pa.array(["02290", None])
    assert [h.generalise(zips, level).to_pylist() for level in range(1, len(h.labels))] == [
        ["0229*", None], ["022**", None], ["02***", None], ["0****", None], ["*", "*"]]
    assert h.labels == ("original", "prefix:4", "prefix:3", "prefix:2", "prefix:1", "*")


def test_derived_bands_nest_so_the_search_may_prune():
    h = derive_hierarchy(pa.array(range(18, 91)))
    assert h.nested and not Hierarchy.parse({"bins": [5, 10, 25]}, "x").nested
    ages = pa.array([18, 37, 90])
    assert h.generalise(ages, 2).to_pylist() == ["[10, 20)", "[30, 40)", "[90, 100)"]
    np.testing.assert_allclose(h.ncp(ages, 2), [10 / 72] * 3)


# --- dates: day, month, year, decade ---------------------------------------------------------

def test_date_levels_from_day_to_decade():
    h = Hierarchy.parse({"date": ["day", "month", "year", "decade"]}, "dob")
    dates = pa.array(["1985-03-12T10:30:00", "1999-12-31", None, "not a date"])
    assert [h.generalise(dates, level).to_pylist() for level in range(1, 5)] == [
        ["1985-03-12", "1999-12-31", None, None],
        ["1985-03", "1999-12", None, None],
        ["1985", "1999", None, None],
        ["1980s", "1990s", None, None],
    ]
    assert h.labels == ("original", "day", "month", "year", "decade", "*")


def test_date_penalty_is_the_share_of_the_span():
    # 1980-01-01 .. 2000-01-01 spans 7305 days; the 1980s hold 3653 days (leap years 80, 84,
    # 88), the 1990s 3652 (92, 96), the 2000s 3653 (2000, 04, 08).
    dates = pa.array(["1980-01-01", "1995-06-15", "2000-01-01"])
    h = Hierarchy.parse({"date": ["day", "decade"]}, "d")
    np.testing.assert_allclose(h.ncp(dates, 1), [1 / 7305] * 3)
    np.testing.assert_allclose(h.ncp(dates, 2), [3653 / 7305, 3652 / 7305, 3653 / 7305])


# --- category trees ---------------------------------------------------------------------------

def test_tree_levels_climb_from_the_leaves():
    h = Hierarchy.parse({"tree": REGIONS}, "region")
    assert h.labels == ("original", "tree:1", "tree:2", "*")
    values = pa.array(["France", "Germany", "Japan", "Atlantis", None])
    assert h.generalise(values, 1).to_pylist() == ["West", "Central", "Japan", "*", None]
    assert h.generalise(values, 2).to_pylist() == ["Europe", "Europe", "Asia", "*", None]
    # Penalty: the share of the 5 leaves in the value's group; a group of one costs nothing;
    # a value the tree does not know is withheld, so it costs everything.
    np.testing.assert_allclose(h.ncp(values, 1), [2 / 5, 0, 0, 1, 0])
    np.testing.assert_allclose(h.ncp(values, 2), [3 / 5, 3 / 5, 2 / 5, 1, 0])


def test_a_single_root_says_no_more_than_star_and_is_dropped():
    h = Hierarchy.parse({"tree": {"World": {"Europe": ["France", "Spain"], "Asia": ["Japan"]}}}, "r")
    assert h.labels == ("original", "tree:1", "*")
    assert h.generalise(pa.array(["Spain", "Japan"]), 1).to_pylist() == ["Europe", "Asia"]


def test_tree_leaves_may_be_numbers_matched_as_text():
    h = Hierarchy.parse({"tree": {"low": [1, 2], "high": [3]}}, "grade")
    assert h.generalise(pa.array([1, 3, 4]), 1).to_pylist() == ["low", "high", "*"]


# --- profiles ---------------------------------------------------------------------------------

def test_profiles_old_and_new_forms():
    profile = parse_profile({"quasi_identifiers": {
        "age": {"bins": [5, 10, 20]}, "zip": {"prefix": [4, 3, 2]}, "dob": {"date": ["month", "year"]},
        "sex": {"suppress": True}, "region": {"tree": REGIONS}, "income": {"auto": True},
        "visit": {"date": ["day", "month", "year", "decade"]}}, "t_closeness": 0.25})
    hs = profile.hierarchies(["age", "zip", "dob", "sex", "region", "income", "visit", "unlisted"])
    assert hs["age"] == Hierarchy("bins", (5, 10, 20)) and hs["sex"] == Hierarchy("suppress")
    assert hs["region"].kind == "tree" and hs["visit"].levels == ("day", "month", "year", "decade")
    assert hs["income"] == hs["unlisted"] == Hierarchy("auto")  # derived from the data when planning
    assert profile.t_closeness == 0.25 and parse_profile({}).t_closeness is None


@pytest.mark.parametrize(("entry", "field"), [
    ({"tree": []}, "quasi_identifiers.region.tree"),
    ({"tree": {"Europe": []}}, "quasi_identifiers.region.tree"),
    ({"tree": {"Europe": ["France", "France"]}}, "quasi_identifiers.region.tree"),
    ({"tree": {"France": ["France"]}}, "quasi_identifiers.region.tree"),
    ({"tree": {"Europe": ["*"]}}, "quasi_identifiers.region.tree"),
    ({"tree": {"Europe": [["France"]]}}, "quasi_identifiers.region.tree"),
    ({"tree": {"Europe": "France"}}, "quasi_identifiers.region.tree"),
    ({"tree": {"Europe": [True]}}, "quasi_identifiers.region.tree"),
    ({"tree": ["France"]}, "quasi_identifiers.region.tree"),
    ({"auto": "yes"}, "quasi_identifiers.region.auto"),
    ({"date": ["decade", "year"]}, "quasi_identifiers.region.date"),
    ({"date": ["day", "day"]}, "quasi_identifiers.region.date"),
    ({"date": ["fortnight"]}, "quasi_identifiers.region.date"),
    ({"bins": [10, 5]}, "quasi_identifiers.region.bins"),
    ({"levels": [1]}, "quasi_identifiers.region"),
])
def test_bad_profile_entries_name_the_field(entry, field):
    with pytest.raises(InvalidArgument) as err:
        parse_profile({"quasi_identifiers": {"region": entry}})
    assert err.value.field == field


@pytest.mark.parametrize("t", [0, -0.1, 1.5, "0.2", True])
def test_bad_t_closeness_names_the_field(t):
    with pytest.raises(InvalidArgument) as err:
        parse_profile({"t_closeness": t})
    assert err.value.field == "t_closeness"


def test_a_deep_tree_is_refused_not_recursed():
    tree: dict[str, object] = {"leaf": ["x"]}
    for depth in range(40):
        tree = {f"n{depth}": tree}
    with pytest.raises(InvalidArgument) as err:
        Hierarchy.parse({"tree": tree}, "q")
    assert err.value.field == "q.tree"


@pytest.mark.parametrize(("label", "raw", "expected"), [
    ("bins:10", 37, "[30, 40)"), ("prefix:2", "02290", "02***"), ("day", "1985-03-12", "1985-03-12"),
    ("decade", "1985-03-12", "1980s"), ("*", "x", "*"),
])
def test_a_level_label_rebuilds_its_generalisation(label, raw, expected):
    h, level = Hierarchy.at_label(label, "col")
    assert h.generalise(pa.array([raw]), level).to_pylist() == [expected]


@pytest.mark.parametrize("label", ["tree:1", "bins:x", "prefix:", "fortnight"])
def test_a_label_without_a_rebuildable_generalisation_is_refused(label):
    with pytest.raises(InvalidArgument) as err:
        Hierarchy.at_label(label, "col")
    assert err.value.field == "col"
