"""Identifiers, dates and addresses of other countries: Brazilian CPF, CNPJ and CEP, the
Japanese My Number and the personal numbers python-stdnum checks; dates written in words
in other languages and in the CJK form; street addresses in Japanese, Chinese and the
Romance and Germanic languages; and what none of them should take for one."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from privet.governance.masking import PiiType, classify_column, scan, scan_text
from privet.governance.masking import national_ids as ids
from privet.governance.masking.entities import TEXT_TYPES
from privet.governance.masking.finding import Finder
from privet.governance.masking.patterns import DETECTION_THRESHOLD, RECOGNIZERS, recognizer
from privet.governance.masking.validators import parse_date

# --- national identifiers ---------------------------------------------------------------

# (validator, a valid number, the same with one digit or the check character changed)
ID_CASES = [
    (ids.validate_br_cpf, "123.456.789-09", "123.456.789-08"),
    (ids.validate_br_cpf, "12345678909", "12345678919"),
    (ids.validate_br_cnpj, "11.222.333/0001-81", "11.222.333/0001-82"),
    (ids.validate_jp_my_number, "1234 5678 9018", "1234 5678 9017"),
    (ids.validate_jp_my_number, "123456789018", "123456789019"),
    (ids.validate_pl_pesel, "44051401359", "44051401358"),
    (ids.validate_pt_nif, "123456789", "123456780"),
    (ids.validate_se_personnummer, "811218-9876", "811218-9875"),
    (ids.validate_kr_rrn, "971013-9019902", "971013-9019903"),
    (ids.validate_mx_curp, "BOXW310820HNERXN09", "BOXW310820HNERXN08"),
    (ids.validate_ar_cuit, "20-26756539-3", "20-26756539-4"),
    (ids.validate_cl_rut, "12.345.678-5", "12.345.678-4"),
    (ids.validate_be_nn, "85.07.30-033.28", "85.07.30-033.29"),
    (ids.validate_fi_hetu, "131052-308T", "131052-308U"),
    (ids.validate_no_fnr, "151086 95088", "151086 95089"),
    (ids.validate_tr_tckn, "17291716060", "17291716061"),
    (ids.validate_ch_ahv, "756.9217.0769.85", "756.9217.0769.84"),
]


@pytest.mark.parametrize(("validate", "valid", "wrong"), ID_CASES, ids=[c[1] for c in ID_CASES])
def test_checksums_accept_the_valid_and_reject_a_changed_digit(validate, valid, wrong):
    assert validate(valid) is not None
    assert validate(wrong) is None


def test_repeated_digits_are_placeholders_not_cpfs():
    assert ids.validate_br_cpf("111.111.111-11") is None
    assert ids.validate_br_cpf("00000000000") is None


_TEXT_RECOGNIZERS = tuple(r for r in RECOGNIZERS if r.type in TEXT_TYPES)


def _found(text: str, region: str = "US", min_score: float = DETECTION_THRESHOLD) -> list[tuple[PiiType, str]]:
    """What the recognizers' rules find in `text` (the patterns alone, without the model
    `scan_text` also runs for names and places), as (type, matched text)."""
    finder = Finder(_TEXT_RECOGNIZERS, region, min_score)
    return [(f.type, text[f.start:f.end]) for f in finder.find_in(text, _TEXT_RECOGNIZERS)]


def _scanned(text: str, region: str = "US") -> list[tuple[PiiType, str]]:
    return [(f.type, text[f.start:f.end]) for f in scan_text(pa.array([text]), default_region=region)[0]]


def _masked(text: str, region: str = "US") -> str:
    return str(scan(pa.array([text]), default_region=region)[0].as_py())


@pytest.mark.parametrize(("text", "pii_type", "entity"), [
    ("Meu CPF é 123.456.789-09, confira.", PiiType.BR_CPF, "123.456.789-09"),
    ("Cliente 123.456.789-09 aprovado", PiiType.BR_CPF, "123.456.789-09"),  # punctuated: no keyword needed
    ("CPF 12345678909 cadastrado", PiiType.BR_CPF, "12345678909"),
    ("Número do cadastro de pessoas físicas: 12345678909", PiiType.BR_CPF, "12345678909"),
    ("Empresa CNPJ 11.222.333/0001-81", PiiType.BR_CNPJ, "11.222.333/0001-81"),
    ("マイナンバー：1234 5678 9018", PiiType.JP_MY_NUMBER, "1234 5678 9018"),
    ("My Number 1234-5678-9018 on file", PiiType.JP_MY_NUMBER, "1234-5678-9018"),
    ("CEP 01310-100, São Paulo", PiiType.POSTAL_CODE, "01310-100"),
    ("PESEL 44051401359", PiiType.PL_PESEL, "44051401359"),
    ("NIF 123456789", PiiType.PT_NIF, "123456789"),
    ("personnummer 811218-9876", PiiType.SE_PERSONNUMMER, "811218-9876"),
    ("주민등록번호 971013-9019902", PiiType.KR_RRN, "971013-9019902"),
    ("Su CURP es BOXW310820HNERXN09.", PiiType.MX_CURP, "BOXW310820HNERXN09"),
    ("CUIT 20-26756539-3", PiiType.AR_CUIT, "20-26756539-3"),
    ("Mi RUT es 12.345.678-5", PiiType.CL_RUT, "12.345.678-5"),
    ("Rijksregisternummer 85.07.30-033.28", PiiType.BE_NN, "85.07.30-033.28"),
    ("Henkilötunnus 131052-308T", PiiType.FI_HETU, "131052-308T"),
    ("fødselsnummer 151086 95088", PiiType.NO_FNR, "151086 95088"),
    ("TC kimlik no 17291716060", PiiType.TR_TCKN, "17291716060"),
    ("AHV-Nummer 756.9217.0769.85", PiiType.CH_AHV, "756.9217.0769.85"),
])
def test_identifiers_in_free_text(text, pii_type, entity):
    assert _found(text, "BR") == [(pii_type, entity)]
    # scan_text also runs the names-and-places model, which may read a CEP as part of an address.
    assert any(entity in found for _, found in _scanned(text, "BR")), _scanned(text, "BR")
    assert f"<{pii_type.value}>" in _masked(text, "BR") and entity not in _masked(text, "BR")


@pytest.mark.parametrize("text", [
    "numero 12345678909 sem contexto",    # a valid CPF, bare and alone
    "ref 01310-100",                       # a CEP's shape, no keyword
    "order 123456789018 shipped",          # a valid My Number, bare and alone
    "batch 44051401359",                   # a valid PESEL, bare and alone
])
def test_bare_numbers_need_context(text):
    assert _found(text) == []


def test_identifier_columns_are_classified():
    cpfs = pa.array(["123.456.789-09", "529.982.247-25", "111.444.777-35"])
    assert classify_column("field_7", cpfs).pii_type is PiiType.BR_CPF
    bare = pa.array(["12345678909", "52998224725", "11144477735"])
    assert classify_column("cpf", bare).pii_type is PiiType.BR_CPF
    assert classify_column("cep", pa.array(["01310-100", "20040-002", "30130-010"])).pii_type is PiiType.POSTAL_CODE


# --- dates in words ---------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("5 de marzo de 1980", dt.date(1980, 3, 5)),
    ("5 de mayo del 1980", dt.date(1980, 5, 5)),
    ("15 août 1952", dt.date(1952, 8, 15)),
    ("1er mars 1990", dt.date(1990, 3, 1)),
    ("3. Oktober 1958", dt.date(1958, 10, 3)),
    ("3. März 1958", dt.date(1958, 3, 3)),
    ("5 marzo 1980", dt.date(1980, 3, 5)),
    ("5 de março de 1980", dt.date(1980, 3, 5)),
    ("5 maart 1980", dt.date(1980, 3, 5)),
    ("12 września 1985", dt.date(1985, 9, 12)),
    ("March 12th, 1985", dt.date(1985, 3, 12)),
    ("1958年10月3日", dt.date(1958, 10, 3)),
    ("1958년 10월 3일", dt.date(1958, 10, 3)),
])
def test_dates_in_words_parse_to_the_right_date(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["31 de febrero de 1980", "30 février 1990", "1958年13月3日", "5 de foo de 1980",
                                  "12 apples 1985"])
def test_impossible_or_wordy_dates_are_not_dates(text):
    assert parse_date(text) is None


@pytest.mark.parametrize(("text", "entity"), [
    ("Nació el 5 de marzo de 1980 en Madrid.", "5 de marzo de 1980"),
    ("Elle est née le 15 août 1952 à Lyon.", "15 août 1952"),
    ("Rendez-vous le 1er mars 1990.", "1er mars 1990"),
    ("Er wurde am 3. März 1958 geboren.", "3. März 1958"),
    ("nato il 5 marzo 1980 a Roma", "5 marzo 1980"),
    ("Ela nasceu em 5 de março de 1980.", "5 de março de 1980"),
    ("geboren op 5 maart 1980", "5 maart 1980"),
    ("1958年10月3日生まれ", "1958年10月3日"),
    ("생일은 1958년 10월 3일입니다", "1958년 10월 3일"),
])
def test_dates_in_words_found_in_free_text(text, entity):
    assert _found(text) == [(PiiType.DATE, entity)]
    assert (PiiType.DATE, entity) in _scanned(text)
    assert "<DATE>" in _masked(text) and entity not in _masked(text)


def test_a_month_alone_is_no_date():
    assert _found("1958年10月に") == []
    assert _found("im März 1958") == []


# --- street addresses -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "entity"), [
    ("住所：東京都千代田区丸の内1-9-1", "東京都千代田区丸の内1-9-1"),
    ("大阪府大阪市北区梅田3丁目1番1号にあります", "大阪府大阪市北区梅田3丁目1番1号"),
    ("我住在北京市朝阳区建国路88号。", "北京市朝阳区建国路88号"),
    ("公司地址：上海市浦东新区世纪大道100号", "上海市浦东新区世纪大道100号"),
    ("Moro na Rua das Flores, 123, desde 2010.", "Rua das Flores, 123"),
    ("Escritório: Avenida Paulista, 1578 - Bela Vista", "Avenida Paulista, 1578 - Bela Vista"),
    ("Entrega na Av. Brasil 500 amanhã", "Av. Brasil 500"),
    ("Vivo en Calle Mayor 5, Madrid.", "Calle Mayor 5"),
    ("La sede è in Via Roma 10, Milano.", "Via Roma 10"),
    ("Il habite 12 rue de la Paix, Paris.", "12 rue de la Paix"),
    ("Sie wohnt in der Hauptstraße 5 in Berlin.", "Hauptstraße 5"),
    ("Wir sind in der Berliner Straße 12.", "Berliner Straße 12"),
    ("Kantoor aan de Prinsengracht 263.", "Prinsengracht 263"),
    ("Mieszkam przy ul. Marszałkowska 10.", "ul. Marszałkowska 10"),
    ("She lives at 221B Baker Street, London.", "221B Baker Street"),  # English order: a keyword lifts it
])
def test_addresses_found_with_their_span(text, entity):
    assert _found(text) == [(PiiType.ADDRESS, entity)]
    # scan_text also runs the names-and-places model, whose address may reach a city beside
    # it or leave out the street type.
    assert any(t is PiiType.ADDRESS and (entity in found or found in entity) for t, found in _scanned(text)), \
        _scanned(text)
    masked = _masked(text)
    assert "<ADDRESS>" in masked and entity not in masked, masked


@pytest.mark.parametrize("text", [
    "Send it via email please.", "sent via DHL 2 days ago", "Street Fighter 2 is a game.", "We met on Main Street.",
    "La rue est belle.", "rue sans numéro", "Chrome 120.0.4351.73",
    "INV-2024-531702", "Invoice 2024-00531 paid", "Order #55123 shipped in 3 boxes", "version 3.4.1 released",
    "Spring 2020 collection",
])
def test_not_addresses(text):
    assert PiiType.ADDRESS not in [t for t, _ in _found(text)]
    assert PiiType.ADDRESS not in [t for t, _ in _found(text, min_score=0.4)]  # what `scan` masks


@pytest.mark.parametrize("text", [
    "Chrome 120.0.4351.73", "INV-2024-531702", "Invoice 2024-00531 paid", "Order 1234567890123 shipped",
    "build 20240115-1234", "lot 20231231-0007", "sent via email", "la rue est longue", "Street Fighter 2",
])
def test_reference_numbers_and_versions_are_none_of_the_new_types(text):
    new = {PiiType.BR_CPF, PiiType.BR_CNPJ, PiiType.JP_MY_NUMBER, PiiType.PL_PESEL, PiiType.PT_NIF,
           PiiType.SE_PERSONNUMMER, PiiType.KR_RRN, PiiType.MX_CURP, PiiType.AR_CUIT, PiiType.CL_RUT, PiiType.BE_NN,
           PiiType.FI_HETU, PiiType.NO_FNR, PiiType.TR_TCKN, PiiType.CH_AHV, PiiType.ADDRESS, PiiType.POSTAL_CODE,
           PiiType.DATE}
    for region in ("US", "BR"):
        assert not {t for t, _ in _found(text, region, min_score=0.4)} & new, (text, region)


@pytest.mark.parametrize("text", ["221B Baker Street", "Plaza Suite 148", "via Roma 10"])
def test_forms_english_also_writes_stay_below_the_threshold_alone(text):
    (rec,) = recognizer(PiiType.ADDRESS)
    assert rec.validate(text, "US") < DETECTION_THRESHOLD
    assert _found(f"Ships from {text} soon") == []
    assert _found(f"Address: {text}") == [(PiiType.ADDRESS, text)]


# --- both regex engines agree -----------------------------------------------------------

_AGREEMENT_TEXTS = [
    "Moro na Rua das Flores, 123 e trabalho na Avenida Paulista, 1578 - Bela Vista",
    "東京都千代田区丸の内1-9-1 と 大阪府大阪市北区梅田3丁目1番1号",
    "北京市朝阳区建国路88号、上海市浦东新区世纪大道100号",
    "né le 15 août 1952, AOÛT 1952, 3. MÄRZ 1958, 5 de Março de 1980, 1958年10月3日",
    "CPF 123.456.789-09 e 12345678909, CNPJ 11.222.333/0001-81, CEP 01310-100",
    "Hauptstraße 5, Sabina-Franke-Gasse 77/93, 12 rue de la Paix, Via Roma 10 Piano 4",
]


@pytest.mark.parametrize("rec", [r for r in RECOGNIZERS if r.type in (
    PiiType.ADDRESS, PiiType.DATE, PiiType.BR_CPF, PiiType.BR_CNPJ, PiiType.POSTAL_CODE, PiiType.FI_HETU)],
    ids=lambda r: r.type.value)
def test_re2_and_python_find_the_same_spans(rec):
    """The column pass (RE2) and the span search (Python `re`) must agree on every match."""
    for text in _AGREEMENT_TEXTS:
        python = [m.group() for m in rec.compiled.finditer(text)]
        re2 = pc.extract_regex(pa.array([text]), f"(?P<m>{rec.pattern})")[0]
        first = re2.as_py()["m"] if re2.is_valid else None
        assert first == (python[0] if python else None), (text, first, python)
        assert pc.count_substring_regex(pa.array([text]), rec.pattern)[0].as_py() == len(python)


def test_keywords_in_scripts_without_spaces_lend_context() -> None:
    # マイナンバー runs straight into the number: no word boundary to find, yet context.
    from stdnum.jp import in_

    from privet.governance.masking.free_text import scan as scan_column
    number = "12345678901" + in_.calc_check_digit("12345678901")
    assert scan_column(pa.array([f"私のマイナンバー{number}です"])).to_pylist() == ["私のマイナンバー<JP_MY_NUMBER>です"]
    assert scan_column(pa.array([f"番号は{number}"])).to_pylist() == [f"番号は{number}"]  # no keyword: a bare number


@pytest.mark.parametrize(("text", "masked"), [
    ("Born 10th September 1995.", "Born <DATE>."),
    ("on the 1st of May 1990", "on the <DATE>"),
    # Latin-script entities end where CJK text begins (no space between them there).
    ("請求書をrito@example.net", "請求書を<EMAIL>"),
    ("プロフィール http://kato.org/、個人番号", "プロフィール <URL>、個人番号"),
    # Labels in scripts without spaces say what the number is.
    ("客户的订单号：4532015112830366", "客户的订单号：4532015112830366"),
    ("Bestellnr. 4532015112830366", "Bestellnr. 4532015112830366"),
])
def test_what_the_benchmark_found_missing(text: str, masked: str) -> None:
    from privet.governance.masking.free_text import scan as scan_column
    assert scan_column(pa.array([text])).to_pylist() == [masked]


@pytest.mark.parametrize(("text", "masked"), [
    ("账单地址浙江省南宁县秀英宋街z座不一致", "账单地址<ADDRESS>不一致"),   # a building, not a number
    ("杨玉来电反映重复扣款。", "<PERSON_NAME>来电反映重复扣款。"),
    ("尹兰英您好，感谢您的留言。", "<PERSON_NAME>您好，感谢您的留言。"),
    ("今天天气很好，王路很长", "今天天气很好，王路很长"),          # a surname character in a word
])
def test_chinese_names_and_addresses_by_their_context(text: str, masked: str) -> None:
    from privet.governance.masking.free_text import scan as scan_column
    assert scan_column(pa.array([text])).to_pylist() == [masked]
