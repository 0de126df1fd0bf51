"""privet.toml is checked against its schema: an unknown section or key, or a value of the wrong
type, is refused with the file, line and key (every one at once), never ignored; and the schema
admits every key the code reads."""

from __future__ import annotations

import ast
import pathlib

import pytest

from privet.governance.config import DEFAULT_TOML, SCHEMA, ConfigError, Home, check_toml

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _settings(tmp_path: pathlib.Path, text: str):
    (tmp_path / "privet.toml").write_text(text)
    return Home(tmp_path).settings()


def _problems(tmp_path: pathlib.Path, text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, text)
    return caught.value.problems


def test_the_default_file_and_no_file_are_accepted(tmp_path: pathlib.Path) -> None:
    import tomllib

    assert check_toml(tomllib.loads(DEFAULT_TOML), DEFAULT_TOML, "privet.toml") == []
    assert Home(tmp_path).settings().addresses["registry"] == "127.0.0.1:50053"


def test_a_misspelt_section_is_refused_not_ignored(tmp_path: pathlib.Path) -> None:
    # The operator meant [addresses]: silently ignoring it would point the CLI at default ports.
    text = DEFAULT_TOML.replace("[addresses]", "[adresses]")
    line = text.splitlines().index("[adresses]") + 1
    (problem,) = _problems(tmp_path, text)
    assert problem == f"{tmp_path / 'privet.toml'}:{line}: adresses: unknown section, did you mean 'addresses'? (known: {', '.join(SCHEMA)})"


def test_an_unknown_key_and_a_wrong_type_name_file_line_and_key(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "privet.toml"
    got = _problems(tmp_path, (
        "[addresses]\n"
        'inferense = "127.0.0.1:60054"\n'   # 2
        "registry = 60053\n"                 # 3
        "\n[limits]\n"
        'max_message_bytes = "8MiB"\n'       # 6
        "max_upload_bytes = true\n"          # 7
        "\n[inference]\n"
        "requests_per_minute = 2.5\n"        # 10
        "max_queue_delay_ms = 5\n"           # an integer where a number goes: fine
    ))
    assert got == (
        f"{path}:2: addresses.inferense: unknown key, did you mean 'inference'? (known: ingestion, training, registry, inference)",
        f"{path}:3: addresses.registry: must be a string, got 60053",
        f"{path}:6: limits.max_message_bytes: must be an integer, got '8MiB'",
        f"{path}:7: limits.max_upload_bytes: must be an integer, got true",
        f"{path}:10: inference.requests_per_minute: must be an integer, got 2.5",
    )


def test_every_problem_is_listed_at_once_in_file_order_on_one_line(tmp_path: pathlib.Path) -> None:
    text = (
        'stray = 1\n'                                   # 1: outside any section
        '[database]\nurl = ""\n'
        '[addresses]\nregistry = "127.0.0.1"\n'          # 5: no port
        '[privacy]\nmax_dataset_epsilon = 1000\n'        # 7: beyond what an accountant honours
        '[audit.extra]\nx = 1\n'                         # 8: a nested table is an unknown key
        '[[metrics]]\nregistry = ""\n'                   # 10: not a section
    )
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, text)
    lines = [int(p.split(":")[1]) for p in caught.value.problems]
    assert lines == [1, 5, 7, 8, 10], caught.value.problems
    assert str(caught.value).startswith("5 problems: ") and "\n" not in str(caught.value)
    assert 'addresses.registry: expected "host:port"' in str(caught.value)


def test_dotted_keys_and_multiline_strings_get_their_lines(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "privet.toml"
    got = _problems(tmp_path, (
        '[audit]\norigin = """\n[bogus]\nstill the string\n"""\n'   # the [bogus] inside is text
        'limits.max_upload_bytes = "big"\n'                          # 6: [audit].limits... → audit.limits
        '[database]\nurll = ""\n'                                    # 8
    ))
    assert got == (
        f"{path}:6: audit.limits: unknown key (known: origin, checkpoint_every_events, checkpoint_every_seconds)",
        f"{path}:8: database.urll: unknown key, did you mean 'url'? (known: url)",
    )


def test_the_values_that_pass_are_the_ones_used(tmp_path: pathlib.Path) -> None:
    s = _settings(tmp_path, '[addresses]\nregistry = "10.0.0.7:7000"\n[metrics]\ninference = ""\n[audit]\ncheckpoint_every_seconds = 3\n')
    assert s.addresses["registry"] == "10.0.0.7:7000" and s.metrics_addresses["inference"] == ""
    assert s.checkpoint_every_seconds == 3.0


def _keys_read_from_extra() -> set[tuple[str, str]]:
    """(section, key) for every `X = <...>.extra.get("section", ...)` in governance/ and
    services/, with each `X.get("key")` / `X["key"]` in the same function."""
    found: set[tuple[str, str]] = set()
    for path in [*(ROOT / "governance").rglob("*.py"), *(ROOT / "services").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            sections: dict[str, str] = {}
            for node in ast.walk(fn):
                if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                        and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
                        and node.value.func.attr == "get" and isinstance(node.value.func.value, ast.Attribute)
                        and node.value.func.value.attr == "extra" and node.value.args
                        and isinstance(node.value.args[0], ast.Constant)):
                    sections[node.targets[0].id] = node.value.args[0].value
            for node in ast.walk(fn):
                target, key = None, None
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                        and isinstance(node.func.value, ast.Name) and node.args and isinstance(node.args[0], ast.Constant)):
                    target, key = node.func.value.id, node.args[0].value
                elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Constant):
                    target, key = node.value.id, node.slice.value
                if target in sections:
                    found.add((sections[target], key))
    return found


def test_the_schema_admits_every_key_the_code_reads() -> None:
    read = _keys_read_from_extra()
    assert ("inference", "requests_per_minute") in read  # the scan sees what it should
    missing = sorted(f"{section}.{key}" for section, key in read if key not in SCHEMA.get(section, {}))
    assert not missing, f"read through settings.extra but not in governance.config.SCHEMA: {missing}"


def test_every_inference_key_in_use_is_accepted(tmp_path: pathlib.Path) -> None:
    s = _settings(tmp_path, "[inference]\nrequests_per_minute = 3\nmax_batch_rows = 64\nmax_queue_delay_ms = 0.5\n"
                            "revocation_poll_seconds = 0.2\nrevocation_grace_seconds = 1\n")
    assert s.extra["inference"]["requests_per_minute"] == 3
