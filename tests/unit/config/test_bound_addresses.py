"""A service configured on port 0 listens on any free port; the others find it where its
server recorded the port it bound."""

from __future__ import annotations

import pathlib

from privet.governance.config import Home
from tests.conftest import ANY_PORT, make_home, use_any_ports


def test_port_zero_resolves_to_the_recorded_port_and_listens_as_configured(tmp_path: pathlib.Path) -> None:
    home = make_home(tmp_path / "home")
    use_any_ports(home)
    before = home.settings()
    assert before.addresses["registry"] == ANY_PORT  # nothing bound yet: nothing answers there
    home.record_bound_address("registry", "127.0.0.1:45678")
    after = home.settings()
    assert after.addresses["registry"] == "127.0.0.1:45678"
    assert after.listen_addresses["registry"] == ANY_PORT  # a restart binds any port again
    assert after.addresses["training"] == ANY_PORT


def test_a_fixed_port_ignores_a_recorded_one(tmp_path: pathlib.Path) -> None:
    home: Home = make_home(tmp_path / "home")
    configured = home.settings().addresses["ingestion"]
    assert not configured.endswith(":0")
    home.record_bound_address("ingestion", "127.0.0.1:1")  # stale, from some other run
    assert home.settings().addresses["ingestion"] == configured
