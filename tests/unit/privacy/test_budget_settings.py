"""The operator's budget cap in privet.toml: read, defaulted, and bounded."""

from __future__ import annotations

import pathlib

import pytest

from privet.governance.config import Home
from privet.governance.privacy.limits import DEFAULT_MAX_DATASET_DELTA, DEFAULT_MAX_DATASET_EPSILON, MAX_ACCOUNTED_EPSILON


def _home(tmp_path: pathlib.Path, text: str) -> Home:
    (tmp_path / "privet.toml").write_text(text)
    return Home(tmp_path)


def test_no_privacy_section_means_the_defaults(tmp_path: pathlib.Path) -> None:
    s = _home(tmp_path, "[limits]\n").settings()
    assert (s.max_dataset_epsilon, s.max_dataset_delta) == (DEFAULT_MAX_DATASET_EPSILON, DEFAULT_MAX_DATASET_DELTA) == (10.0, 1e-5)


def test_the_cap_is_read(tmp_path: pathlib.Path) -> None:
    s = _home(tmp_path, "[privacy]\nmax_dataset_epsilon = 3\nmax_dataset_delta = 1e-6\n").settings()
    assert (s.max_dataset_epsilon, s.max_dataset_delta) == (3.0, 1e-6)


@pytest.mark.parametrize("line", [f"max_dataset_epsilon = {MAX_ACCOUNTED_EPSILON * 10}", "max_dataset_epsilon = 0", "max_dataset_delta = 1"])
def test_a_cap_no_accountant_can_honour_is_refused_at_start(tmp_path: pathlib.Path, line: str) -> None:
    with pytest.raises(ValueError, match=r"\[privacy\]"):
        _home(tmp_path, f"[privacy]\n{line}\n").settings()
