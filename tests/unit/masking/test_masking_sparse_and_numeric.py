"""Personal data the default profile used to keep raw: identifier columns mostly blank (a CSV
reads an empty cell as "", not null, and the blanks outvoted the identifiers), and
identifiers stored as floats or decimals (pandas writes an integer column with a missing
value as float64)."""

from __future__ import annotations

import decimal
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from privet.governance.datasets.formats import CsvDialect, spool
from privet.governance.datasets.pipeline import AnonymisationSpec, mask_upload
from privet.governance.masking import MaskingKeys, apply_profile, classify_column, load_profile

KEYS = MaskingKeys.derive(b"test-secret-of-32-bytes-at-least!", key_id="test/v1")
ROWS = 2000
SSNS = ("536-22-1234", "412-55-8765", "601-32-7788")
PHONES = ("(415) 555-2671", "212-555-1234", "415.555.0123")
SSN_NUMBERS = (536221234, 412558765, 601327788)
PHONE_NUMBERS = (14155552671, 14155550123, 12125551234)


@pytest.fixture(scope="module")
def default_profile():
    return load_profile(Path(__file__).resolve().parents[3] / "policies" / "masking" / "default.yaml")


def _sparse(values: tuple[str, ...], filled: float, blank: str = "") -> list[str]:
    """ROWS cells, `filled` of them (in every run of 20) holding `values` in turn, the rest `blank`."""
    return [values[i % len(values)] if i % 20 < round(filled * 20) else blank for i in range(ROWS)]


def _raw_survivors(masked: pa.Table, raw: set[str]) -> list[str]:
    cells = [str(v) for col in masked.columns for v in col.to_pylist() if v is not None]
    return [c for c in cells if c in raw or any(r in c for r in raw)]


# --- mostly blank identifier columns ---------------------------------------------------------

@pytest.mark.parametrize("filled", [0.30, 0.40, 0.45])
def test_sparsely_filled_ssn_and_phone_columns_are_masked(default_profile, filled):
    table = pa.table({"ssn": _sparse(SSNS, filled), "phone": _sparse(PHONES, filled)})
    masked, report = apply_profile(table, default_profile, KEYS)
    actions = {c.column: (c.action, c.pii_types) for c in report.columns}
    assert actions == {"ssn": ("hash", ["US_SSN"]), "phone": ("hash", ["PHONE"])}
    assert not _raw_survivors(masked, {*SSNS, *PHONES})


@pytest.mark.parametrize("blank", ["   ", "\t", "N/A", "null"])
def test_whitespace_and_missing_markers_do_not_dilute_the_vote(blank):
    result = classify_column("ssn", pa.array(_sparse(SSNS, 0.3, blank)))
    assert result.pii_type is not None and result.pii_type.value == "US_SSN"
    assert result.shares[result.pii_type] == 1.0  # a share of the cells holding a value


def test_a_column_of_blanks_only_is_empty():
    assert classify_column("ssn", pa.array(["", "  ", "N/A"] * 10)).kind == "empty"


def test_sparse_csv_upload_stores_no_raw_identifier(default_profile, tmp_path):
    lines = ["id,ssn,phone"] + [f"{i},{s},{p}" for i, (s, p) in
                                enumerate(zip(_sparse(SSNS, 0.4), _sparse(PHONES, 0.4)))]
    upload = spool([("\n".join(lines) + "\n").encode()], tmp_path, limit=1 << 30)
    out = mask_upload(upload, "csv", CsvDialect(), default_profile, KEYS, AnonymisationSpec(), tmp_path)
    try:
        actions = {c.column: c.action for c in out.report.columns}
        assert actions["ssn"] == "hash" and actions["phone"] == "hash"
        assert not _raw_survivors(pq.read_table(out.path), {*SSNS, *PHONES})
    finally:
        out.discard()
        upload.discard()


# --- identifiers stored as floats or decimals -----------------------------------------------

def _numbers(values: tuple[int, ...], type_: pa.DataType) -> pa.Array:
    cells = [*values, None] * 5
    if pa.types.is_decimal(type_):
        return pa.array([None if v is None else decimal.Decimal(v) for v in cells], type_)
    return pa.array([None if v is None else float(v) for v in cells], type_)


def _spellings(values: tuple[int, ...]) -> set[str]:
    """How a raw value could show in the output: as digits, a float, or a decimal."""
    return {s for v in values for s in (str(v), str(float(v)), f"{v}.00", f"{float(v):g}")}


NUMBER_TYPES = [pa.float64(), pa.decimal128(20, 0), pa.decimal128(20, 2)]


@pytest.mark.parametrize("type_", NUMBER_TYPES, ids=str)
def test_float_and_decimal_identifiers_are_masked(default_profile, type_):
    table = pa.table({"ssn": _numbers(SSN_NUMBERS, type_), "phone": _numbers(PHONE_NUMBERS, type_)})
    masked, report = apply_profile(table, default_profile, KEYS)
    actions = {c.column: (c.action, c.pii_types) for c in report.columns}
    assert actions == {"ssn": ("hash", ["US_SSN"]), "phone": ("hash", ["PHONE"])}
    for name in ("ssn", "phone"):
        column = masked.column(name)
        assert column.type == pa.string()  # as a hashed integer column becomes
        assert column.null_count == table.column(name).null_count
    assert not _raw_survivors(masked, _spellings(SSN_NUMBERS) | _spellings(PHONE_NUMBERS))


@pytest.mark.parametrize("type_", NUMBER_TYPES, ids=str)
def test_whole_floats_and_decimals_are_masked_as_the_integer_column_is(default_profile, type_):
    # Phone numbers pass 1e10, where Arrow writes a float as "1.4155552671e+10": the same
    # person must still get the same pseudonym whichever way the column was stored.
    ints = pa.table({"ssn": pa.array([*SSN_NUMBERS, None], pa.int64()),
                     "phone": pa.array([*PHONE_NUMBERS, None], pa.int64())})
    numbers = pa.table({"ssn": _numbers(SSN_NUMBERS, type_).slice(0, 4),
                        "phone": _numbers(PHONE_NUMBERS, type_).slice(0, 4)})
    assert apply_profile(numbers, default_profile, KEYS)[0].equals(apply_profile(ints, default_profile, KEYS)[0])


def test_float_identifiers_through_the_parquet_upload(default_profile, tmp_path):
    buf = io.BytesIO()
    pq.write_table(pa.table({"ssn": _numbers(SSN_NUMBERS, pa.float64()),
                             "phone": _numbers(PHONE_NUMBERS, pa.float64())}), buf)
    upload = spool([buf.getvalue()], tmp_path, limit=1 << 30)
    out = mask_upload(upload, "parquet", CsvDialect(), default_profile, KEYS, AnonymisationSpec(), tmp_path)
    try:
        assert {c.column: c.action for c in out.report.columns} == {"ssn": "hash", "phone": "hash"}
        assert not _raw_survivors(pq.read_table(out.path), _spellings(SSN_NUMBERS) | _spellings(PHONE_NUMBERS))
    finally:
        out.discard()
        upload.discard()


@pytest.mark.parametrize("type_", [pa.float64(), pa.decimal128(20, 2)], ids=str)
def test_fractional_numbers_are_not_identifiers(default_profile, type_):
    """Amounts and measurements stay as they are: only whole values are read as digits."""
    cells = [4155552671.5, 536221234.25, 19.99, 5.0, None] * 5
    if pa.types.is_decimal(type_):
        values = pa.array([None if v is None else decimal.Decimal(str(v)) for v in cells], type_)
    else:
        values = pa.array(cells, type_)
    table = pa.table({"phone": values, "amount": values})
    masked, report = apply_profile(table, default_profile, KEYS)
    assert {(c.column, c.action, c.kind) for c in report.columns} == {("phone", "keep", "not_text"),
                                                                        ("amount", "keep", "not_text")}
    assert masked.equals(table)


def test_nan_is_a_missing_number():
    """pandas and numpy spell a missing float NaN: it must not outvote the identifiers."""
    values = pa.array([float(v) for v in PHONE_NUMBERS] + [float("nan")] * 6)
    result = classify_column("phone", values)
    assert result.pii_type is not None and result.pii_type.value == "PHONE"
    assert classify_column("phone", pa.array([float("nan")] * 3)).kind == "empty"


def test_blank_cells_stay_blank_when_a_column_is_hashed(default_profile):
    table = pa.table({"ssn": pa.array(_sparse(SSNS, 0.4))})
    masked, _ = apply_profile(table, default_profile, KEYS)
    before, after = table.column("ssn").to_pylist(), masked.column("ssn").to_pylist()
    assert [b == "" for b in before] == [a == "" for a in after]
    assert len({a for a in after if a}) == len(SSNS)


# --- a minority of identifiers in a column of something else (issue 22, item 3) ----------

def _luhn(body: str) -> str:
    from stdnum import luhn
    return body + luhn.calc_check_digit(body)


def _product_codes(n: int) -> list[str]:
    return [f"PRD-{(i * 7919) % 100000:05d}-{'ABCDEFGH'[i % 8]}" for i in range(n)]


def test_identifiers_in_one_percent_of_a_product_code_column_are_masked(default_profile) -> None:
    cells = _product_codes(ROWS)
    pasted = {"4539 1488 0343 6467", "536-22-1234", "(415) 555-2671", "5500 0055 5555 5559"}
    for i in range(0, ROWS, 100):  # 1 % of the cells
        cells[i] = sorted(pasted)[(i // 100) % len(pasted)]
    masked, report = apply_profile(pa.table({"product_code": cells}), default_profile, KEYS)
    assert not _raw_survivors(masked, pasted), report.columns
    kept = masked["product_code"].to_pylist()
    assert kept[1] == cells[1] and kept[2] == cells[2]  # the product codes themselves stay


def test_order_numbers_that_pass_luhn_by_chance_are_not_cards(default_profile) -> None:
    # One in ten random 16-digit numbers passes Luhn: in a column of order numbers that is
    # chance, not evidence.
    orders = [f"{(i * 2654435761) % 10**16:016d}" for i in range(1, ROWS + 1)]
    cls = classify_column("order_number", pa.array(orders))
    assert cls.pii_type is None, cls
    masked, _ = apply_profile(pa.table({"order_number": orders}), default_profile, KEYS)
    assert masked["order_number"].to_pylist() == orders


def test_a_mixed_national_id_column_leaves_no_id_raw(pii_faker, default_profile) -> None:
    ids = []
    for i in range(400):
        locale, kind = [("en_US", "US_SSN"), ("en_GB", "UK_NINO"), ("de_DE", "DE_IDNR"), ("nl_NL", "NL_BSN"),
                        ("en_IN", "IN_AADHAAR"), ("es_ES", "ES_DNI"), ("it_IT", "IT_CF"), ("fr_FR", "FR_NIR")][i % 8]
        ids.append(pii_faker.value(kind, locale).replace("-", "") if kind == "US_SSN" else pii_faker.value(kind, locale))
    masked, report = apply_profile(pa.table({"document": ids}), default_profile, KEYS)
    assert not _raw_survivors(masked, set(ids)), (report.columns, masked["document"].to_pylist()[:16])


def test_an_email_among_phone_numbers_is_masked_too(default_profile) -> None:
    phones = [PHONES[i % 3] for i in range(ROWS)]
    phones[17] = "jane.doe@example.org"
    masked, report = apply_profile(pa.table({"phone": phones}), default_profile, KEYS)
    assert "jane.doe@example.org" not in masked["phone"].to_pylist(), report.columns


# --- what the red team stored in clear (issue 22) ------------------------------------------

def test_a_label_does_not_unmask_a_number_written_as_what_it_is(default_profile) -> None:
    rows = [f"refund ref 4111 1111 1111 1111 approved, ref 244-76-8900 checked, invoice +1 415 555 10{i:02d} sent"
            for i in range(100)]
    masked, _ = apply_profile(pa.table({"note": rows}), default_profile, KEYS)
    assert not _raw_survivors(masked, {"4111 1111 1111 1111", "244-76-8900", "+1 415 555 1000"})


def test_random_invoice_numbers_are_not_a_national_id_column() -> None:
    import random
    rng = random.Random(4)
    numbers = [str(rng.randrange(10**8, 10**9)) for _ in range(500)]  # 9 of 10 pass as SSNs
    assert classify_column("invoice", pa.array(numbers)).pii_type is None


def test_a_column_name_holding_personal_data_is_refused(default_profile) -> None:
    from privet.governance.errors import FailedPrecondition
    with pytest.raises(FailedPrecondition) as err:
        apply_profile(pa.table({"jane.doe@example.org": [1], "age": [3]}), default_profile, KEYS)
    assert "EMAIL" in err.value.message and "jane.doe" not in err.value.message  # not quoted back


@pytest.mark.parametrize(("cell", "secret"), [
    ("paid with ４１１１ １１１１ １１１１ １１１１ yesterday", "１１１１"),   # full-width digits
    ("paid with 4111\u00a01111\u00a01111\u00a01111 yesterday", "4111\u00a01111"),  # no-break spaces
    ("ssn 244\u201476\u20148917 checked", "244\u201476"),                   # em dashes
    ("mail jane.doe＠example.org", "jane.doe"),                            # full-width @
    ("mail jane.\u200bdoe@example.org", "doe@example"),                    # zero-width space
    ("call +1 415 555 0\u200b1\u200b3\u200b2", "\u200b1\u200b3"),
])
def test_look_alike_characters_do_not_hide_an_identifier(cell: str, secret: str) -> None:
    from privet.governance.masking.free_text import scan
    masked = scan(pa.array([cell])).to_pylist()[0]
    assert secret not in masked and "<" in masked, masked


def test_full_width_punctuation_alone_is_left_as_written() -> None:
    from privet.governance.masking.free_text import scan
    assert scan(pa.array(["普通の文章（テスト）です"])).to_pylist() == ["普通の文章（テスト）です"]


@pytest.mark.parametrize("faker_locale", ["zh_CN", "pt_BR", "en_US", "de_DE"])
def test_a_column_of_addresses_under_any_header_is_masked_whole(faker_locale: str, default_profile) -> None:
    # Scanned as text, the postcode and city beside a street stayed; a column of addresses
    # is masked whole by the ADDRESS rule.
    from faker import Faker
    fake = Faker(faker_locale)
    fake.seed_instance(3)
    addresses = [fake.address().replace("\n", ", ") for _ in range(200)]
    masked, report = apply_profile(pa.table({"x": addresses}), default_profile, KEYS)
    assert report.columns[0].pii_types[:1] == ["ADDRESS"] and report.columns[0].action == "hash", report.columns
    assert not _raw_survivors(masked, set(addresses))


def test_a_prose_column_that_only_names_people_is_masked(default_profile) -> None:
    from faker import Faker
    fake = Faker("en_US")
    fake.seed_instance(5)
    notes = [f"Talked to {fake.name()} about the refund today" for _ in range(100)]
    masked, report = apply_profile(pa.table({"comment": notes}), default_profile, KEYS)
    assert report.columns[0].action == "scan" and "PERSON_NAME" in report.columns[0].pii_types
    assert sum("<PERSON_NAME>" in m for m in masked["comment"].to_pylist()) >= 95
