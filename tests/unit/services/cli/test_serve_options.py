"""`privet serve --log-format`: text or JSON lines; anything else refused before serving."""

from __future__ import annotations

import pathlib

from privet.services.cli import main
from tests.conftest import make_home


def test_an_unknown_log_format_is_refused_in_one_line(tmp_path: pathlib.Path, capsys) -> None:
    home = make_home(tmp_path / "home")
    try:
        main(["--home", str(home.root), "serve", "all", "--log-format", "xml"])
    except SystemExit as exc:
        assert exc.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--log-format" in err[0] and "text, json" in err[0]
