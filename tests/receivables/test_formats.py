"""Statement and collection-file parsers (receivables.formats): pure parsing, no database.

The fixture files under files/ are realistic statements; each test that needs a
broken variant makes it from a fixture with a visible text replacement.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from receivables.formats import (
    FIXED_WIDTH,
    SEMICOLON_CSV,
    FormatError,
    Layout,
    LineErrors,
    ParsedFile,
    StatementLine,
    camt,
    detect_and_parse,
    parse_camt,
    parse_collector,
    parse_mt940,
)

FILES = Path(__file__).parent / "files"
D = Decimal


def read(name: str) -> bytes:
    return (FILES / name).read_bytes()


def changed(name: str, old: str, new: str, *, encoding: str = "utf-8") -> bytes:
    text = read(name).decode(encoding)
    assert old in text, f"{old!r} is not in {name}"
    return text.replace(old, new, 1).encode(encoding)


def by_id(parsed: ParsedFile) -> dict[str, StatementLine]:
    return {line.txn_id: line for line in parsed.lines}


# --- camt.053 / camt.054 ----------------------------------------------------------


def test_it_reads_a_camt053_v02_statement() -> None:
    parsed = parse_camt(read("camt053_v02.xml"))

    assert parsed.format == "camt.053"
    assert parsed.account == "SK3112000000198742637541"
    assert parsed.statement_id == "STMT-2025-062"
    assert parsed.created_at is not None and parsed.created_at.isoformat() == (
        "2025-03-04T06:15:00+01:00"
    )
    assert (parsed.opening_balance, parsed.closing_balance) == (D("1000.00"), D("1437.00"))
    assert (parsed.control_count, parsed.control_sum) == (7, D("1686.00"))
    assert parsed.business_date is None
    assert [line.txn_id for line in parsed.lines] == [
        "2025030300001",
        "2025030300002/1",
        "TX-B-2",
        "2025030300002/3",
        "2025030300005/RVSL",
        "2025030300006",
        "/VS2025000123/SS1000001/KS0308/20250303/42.00",
    ]
    first = parsed.lines[0]
    assert first == StatementLine(
        line_no=1,
        txn_id="2025030300001",
        booking_date=date(2025, 3, 3),
        value_date=date(2025, 3, 3),
        amount=D("120.50"),
        currency="EUR",
        fee=D("0"),
        payer_name="Ion Popescu",
        payer_account="RO49AAAA1B31007593840000",
        reference="RF18539007547034",
        text="",
        kind="payment",
        reverses="",
    )


def test_it_imports_only_booked_entries() -> None:
    parsed = parse_camt(read("camt053_v02.xml"))
    amounts = [line.amount for line in parsed.lines]

    assert D("999.00") not in amounts  # PDNG
    assert D("-45.00") not in amounts  # our own outgoing payment

    v08 = parse_camt(read("camt053_v08.xml"))
    assert [line.txn_id for line in v08.lines] == ["PKO-TX-1", "PKO-E-3/RTRN"]
    assert D("70.00") not in [line.amount for line in v08.lines]


def test_it_refuses_a_statement_that_does_not_close_at_its_booked_entries() -> None:
    # Booking the pending 999.00 breaks opening + booked entries = closing.
    data = changed("camt053_v02.xml", "<Sts>PDNG</Sts>", "<Sts>BOOK</Sts>")
    with pytest.raises(FormatError) as error:
        parse_camt(data)
    assert "1437.00" in str(error.value)
    assert "2436.00" in str(error.value)


def test_it_expands_a_batch_entry_into_one_line_per_transaction() -> None:
    lines = parse_camt(read("camt053_v02.xml")).lines[1:4]

    assert [(line.line_no, line.amount, line.payer_name) for line in lines] == [
        (2, D("100.00"), "Anna Novakova"),
        (3, D("150.00"), "Peter Kovac"),
        (4, D("50.00"), "Jana Horvathova"),
    ]
    assert [line.text for line in lines] == [
        "Faktura FV-2025-000101",
        "Faktura FV-2025-000102",
        "FV-2025-000103 zaloha",
    ]
    assert sum(line.amount for line in lines) == D("300.00")


def test_it_refuses_a_batch_whose_transactions_do_not_add_up() -> None:
    data = changed(
        "camt053_v02.xml",
        '<TxAmt><Amt Ccy="EUR">150.00</Amt></TxAmt>',
        '<TxAmt><Amt Ccy="EUR">151.00</Amt></TxAmt>',
    )
    with pytest.raises(FormatError) as error:
        parse_camt(data)
    assert "Entry 2" in str(error.value)
    assert "301.00" in str(error.value)
    assert error.value.line_no is not None


def test_it_refuses_a_batch_that_lists_fewer_transactions_than_it_says() -> None:
    data = changed("camt053_v02.xml", "<NbOfTxs>3</NbOfTxs>", "<NbOfTxs>4</NbOfTxs>")
    with pytest.raises(FormatError, match="4"):
        parse_camt(data)


def test_it_reads_a_reversed_credit_as_a_negative_reversal() -> None:
    reversal = by_id(parse_camt(read("camt053_v02.xml")))["2025030300005/RVSL"]

    assert reversal.kind == "reversal"
    assert reversal.amount == D("-80.00")
    assert reversal.reverses == "E2E-ORIG-77"
    assert reversal.value_date == date(2025, 3, 1)
    assert reversal.text == "Storno chybneho kreditu"


def test_it_skips_a_reversal_of_our_own_debit() -> None:
    # CRDT + RvslInd: one of our outgoing payments came back; not a customer's payment.
    data = changed(
        "camt053_v02.xml",
        "<CdtDbtInd>DBIT</CdtDbtInd>\n        <RvslInd>true</RvslInd>",
        "<CdtDbtInd>CRDT</CdtDbtInd>\n        <RvslInd>true</RvslInd>",
    )
    data = data.replace(b'<Amt Ccy="EUR">1437.00</Amt>', b'<Amt Ccy="EUR">1597.00</Amt>')
    data = data.replace(b"<NbOfNtries>5</NbOfNtries>", b"<NbOfNtries>6</NbOfNtries>")
    data = data.replace(b"<Sum>1561.00</Sum>", b"<Sum>1641.00</Sum>")
    data = data.replace(b"<NbOfNtries>2</NbOfNtries>", b"<NbOfNtries>1</NbOfNtries>")
    data = data.replace(b"<Sum>125.00</Sum>", b"<Sum>45.00</Sum>")

    parsed = parse_camt(data)

    assert parsed.closing_balance == D("1597.00")
    assert "2025030300005/RVSL" not in by_id(parsed)
    assert all(line.kind == "payment" for line in parsed.lines)


def test_it_reads_a_returned_direct_debit() -> None:
    returned = by_id(parse_camt(read("camt053_v08.xml")))["PKO-E-3/RTRN"]

    assert returned.kind == "return"
    assert returned.amount == D("-60.00")
    assert returned.reverses == "E2E-SDD-9"
    # The customer, not our own account named as creditor.
    assert returned.payer_name == "Zofia Nowak"
    assert returned.payer_account == "PL10105000997603123456789123"


def test_it_puts_netted_charges_into_the_fee() -> None:
    v02 = by_id(parse_camt(read("camt053_v02.xml")))["2025030300006"]
    # 99.50 reached the account; the payer paid 100.00, 0.50 went in charges.
    assert (v02.amount, v02.fee) == (D("100.00"), D("0.50"))
    assert v02.text == "Invoice FV-2025-000123"

    v08 = by_id(parse_camt(read("camt053_v08.xml")))["PKO-TX-1"]
    # Chrgs/Rcrd: 1.00 taken from the amount; 7.00 billed separately (ChrgInclInd false).
    assert (v08.amount, v08.fee) == (D("251.00"), D("1.00"))
    assert v08.payer_name == "Jan Kowalski"


def test_it_takes_slovak_symbols_from_the_end_to_end_id() -> None:
    line = parse_camt(read("camt053_v02.xml")).lines[-1]

    assert line.reference == "/VS2025000123/SS1000001/KS0308"
    assert line.payer_account == "SK5211000000002612345678"


def test_it_never_uses_an_end_to_end_id_twice_as_a_transaction_id() -> None:
    # The same symbols on two payments of the same day and amount: positional ids.
    entry = read("camt053_v02.xml").decode()
    start = entry.index("      <!-- 7:")
    end = entry.index("    </Stmt>")
    seventh = entry[start:end]
    data = entry[:end] + seventh + entry[end:]
    data = data.replace("<NbOfNtries>7</NbOfNtries>", "<NbOfNtries>8</NbOfNtries>")
    data = data.replace("<Sum>1686.00</Sum>", "<Sum>1728.00</Sum>")
    data = data.replace("<NbOfNtries>5</NbOfNtries>", "<NbOfNtries>6</NbOfNtries>")
    data = data.replace("<Sum>1561.00</Sum>", "<Sum>1603.00</Sum>")
    data = data.replace('<Amt Ccy="EUR">1437.00</Amt>', '<Amt Ccy="EUR">1479.00</Amt>')

    lines = parse_camt(data.encode()).lines

    assert [line.txn_id for line in lines[-2:]] == ["STMT-2025-062/7/1", "STMT-2025-062/8/1"]
    assert [line.reference for line in lines[-2:]] == ["/VS2025000123/SS1000001/KS0308"] * 2


def test_it_takes_the_rf_reference_from_structured_remittance() -> None:
    line = by_id(parse_camt(read("camt053_v08.xml")))["PKO-TX-1"]

    assert line.reference == "RF712348231"
    assert line.text == "Oplata za fakture FV-2025-000200"


def test_it_finds_an_rf_reference_typed_into_free_text() -> None:
    data = changed(
        "camt053_v02.xml",
        "<Ustrd>Invoice FV-2025-000123</Ustrd>",
        "<Ustrd>Invoice FV-2025-000123 ref RF18 5390 0754 7034 thank you</Ustrd>",
    )
    line = by_id(parse_camt(data))["2025030300006"]

    assert line.reference == "RF18539007547034"


def test_it_refuses_a_control_count_that_does_not_match() -> None:
    data = changed("camt053_v02.xml", "<NbOfNtries>7</NbOfNtries>", "<NbOfNtries>8</NbOfNtries>")
    with pytest.raises(FormatError) as error:
        parse_camt(data)
    message = str(error.value)
    assert "8" in message and "7" in message and "STMT-2025-062" in message


def test_it_refuses_a_control_sum_that_does_not_match() -> None:
    data = changed("camt053_v08.xml", "<Sum>380.00</Sum>", "<Sum>380.01</Sum>")
    with pytest.raises(FormatError) as error:
        parse_camt(data)
    assert "380.01" in str(error.value) and "380.00" in str(error.value)


def test_it_refuses_consecutive_statements_that_do_not_chain() -> None:
    text = read("camt053_v08.xml").decode()
    start, end = text.index("    <Stmt>"), text.index("</Stmt>") + len("</Stmt>")
    second = (
        text[start:end]
        .replace("PKO-", "PKO2-")
        .replace('<Amt Ccy="PLN">690.00</Amt>', '<Amt Ccy="PLN">880.00</Amt>')
        .replace('<Amt Ccy="PLN">500.00</Amt>', '<Amt Ccy="PLN">690.00</Amt>')
    )
    chained = text[:end] + "\n" + second + text[end:]

    parsed = parse_camt(chained.encode())
    assert (parsed.opening_balance, parsed.closing_balance) == (D("500.00"), D("880.00"))
    assert parsed.statement_id == "PKO-STMT-20250304"
    assert len(parsed.lines) == 4

    # The second statement opens 10.00 higher than the first closed.
    shifted = second.replace(">690.00<", ">700.00<").replace(">880.00<", ">890.00<")
    gap = text[:end] + "\n" + shifted + text[end:]
    with pytest.raises(FormatError, match="missing"):
        parse_camt(gap.encode())


def test_it_reads_a_camt054_notification() -> None:
    parsed = parse_camt(read("camt054_v08.xml"))

    assert parsed.format == "camt.054"
    assert parsed.account == "IT60X0542811101000000123456"
    assert parsed.statement_id == "NTF-2025-03-03"
    assert parsed.opening_balance is None and parsed.control_count is None
    assert [(line.txn_id, line.amount, line.reference) for line in parsed.lines] == [
        ("POSTE-20250303/1", D("25.10"), "302000000000123456"),
        ("POSTE-20250303/2", D("25.10"), "302000000000123457"),
        ("POSTE-20250303/3", D("25.10"), "302000000000123458"),
    ]
    assert {line.value_date for line in parsed.lines} == {date(2025, 3, 4)}


def test_it_refuses_a_camt052_report() -> None:
    data = (
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.052.001.08">'
        b"<BkToCstmrAcctRpt><GrpHdr><MsgId>1</MsgId></GrpHdr></BkToCstmrAcctRpt></Document>"
    )
    with pytest.raises(FormatError, match="camt.052"):
        parse_camt(data)


def test_it_refuses_xml_that_is_not_a_statement() -> None:
    with pytest.raises(FormatError, match="camt.053"):
        parse_camt(b'<?xml version="1.0"?><Invoice><ID>1</ID></Invoice>')


def test_it_says_where_xml_is_broken() -> None:
    data = changed("camt053_v02.xml", "<Sts>BOOK</Sts>", "<Sts>BOOK</Stz>")
    with pytest.raises(FormatError) as error:
        parse_camt(data)
    assert error.value.line_no == 50


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt>
<Id>&xxe;</Id></Stmt></BkToCstmrStmt></Document>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Document><BkToCstmrStmt><Stmt><Id>&lol9;</Id></Stmt></BkToCstmrStmt></Document>"""


@pytest.mark.parametrize("data", [XXE, BILLION_LAUGHS], ids=["xxe", "billion-laughs"])
def test_it_refuses_entity_declarations(data: bytes) -> None:
    with pytest.raises(FormatError, match="DTD"):
        detect_and_parse(data)
    with pytest.raises(FormatError, match="DTD"):
        parse_camt(data)


def test_it_refuses_entity_declarations_the_byte_check_cannot_see() -> None:
    # UTF-16: "<!DOCTYPE" is not in the bytes as ASCII; the parsed tree is checked too.
    data = XXE.decode().replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    with pytest.raises(FormatError, match="DTD"):
        parse_camt(data.encode("utf-16"))


def test_it_sums_many_tenths_exactly() -> None:
    # 2,500 entries: read in batches of 1,000, the last one partial.
    entry = (
        '<Ntry><Amt Ccy="EUR">0.10</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>'
        "<BookgDt><Dt>2025-03-03</Dt></BookgDt><AcctSvcrRef>R{n}</AcctSvcrRef></Ntry>\n"
    )
    data = (
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>M</MsgId></GrpHdr><Stmt><Id>S</Id>"
        "<Acct><Id><IBAN>SK3112000000198742637541</IBAN></Id></Acct>"
        '<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00</Amt>'
        "<CdtDbtInd>CRDT</CdtDbtInd></Bal>"
        '<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">250.00</Amt>'
        "<CdtDbtInd>CRDT</CdtDbtInd></Bal>"
        "<TxsSummry><TtlNtries><NbOfNtries>2500</NbOfNtries><Sum>250.00</Sum></TtlNtries>"
        "</TxsSummry>" + "".join(entry.format(n=n) for n in range(2500)) + "</Stmt>"
        "</BkToCstmrStmt></Document>"
    )
    assert sum(0.1 for _ in range(2500)) != 250.0  # what a float would get wrong

    parsed = parse_camt(data.encode())

    assert parsed.total == D("250.00")
    assert [line.txn_id for line in parsed.lines] == [f"R{n}" for n in range(2500)]
    assert [line.line_no for line in parsed.lines] == list(range(1, 2501))
    assert all(isinstance(line.amount, Decimal) for line in parsed.lines)

    lines = "".join(f"P;T{n};03.03.2025;1;REF;X;0,10;0,01;S\n" for n in range(1000))
    collector = parse_collector(f"title\n{lines}S;1000;100,00\n".encode(), SEMICOLON_CSV)
    assert collector.total == D("100.00")
    assert sum(line.fee for line in collector.lines) == D("10.00")


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_it_reads_the_same_lines_whatever_the_batch_size(
    batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = parse_camt(read("camt053_v02.xml"))
    monkeypatch.setattr(camt, "_BATCH", batch)

    assert parse_camt(read("camt053_v02.xml")) == expected


# --- MT940 -------------------------------------------------------------------------


def test_it_reads_an_mt940_file_with_two_statements() -> None:
    parsed = parse_mt940(read("mt940_two_statements.sta"))

    assert parsed.format == "mt940"
    assert parsed.account == "PL61109010140000071219812874"
    assert parsed.statement_id == "00045/001..00046/001"
    assert (parsed.opening_balance, parsed.closing_balance) == (D("1000.00"), D("1145.00"))
    assert [(line.line_no, line.txn_id, line.amount, line.kind) for line in parsed.lines] == [
        (6, "BR25030401", D("150.00"), "payment"),
        (13, "20250304/00045/001/3", D("20.00"), "payment"),
        (24, "BR25030501", D("200.00"), "payment"),
        (26, "BR25030401/RVSL", D("-150.00"), "reversal"),
        (28, "BR25030503/RTRN", D("-30.00"), "return"),
    ]


def test_it_reads_polish_structured_information() -> None:
    line = parse_mt940(read("mt940_two_statements.sta")).lines[0]

    assert line.payer_name == "ZAKŁAD USŁUG JÓZEF ŻÓŁĆ SP. J."
    assert line.payer_account == "PL27114020040000300201355387"
    assert line.text == "Faktura FV-2025-000123 RF18539007547034"
    assert line.reference == "RF18539007547034"
    assert line.booking_date == line.value_date == date(2025, 3, 4)


def test_it_leaves_statement_information_out_of_the_last_line() -> None:
    line = parse_mt940(read("mt940_two_statements.sta")).lines[1]

    assert line.text == "Faktura FV-2025-000124 czesc 1 z 2"
    assert line.payer_name == "ANNA NOWAK"


def test_it_reads_slovak_symbols_from_unstructured_information() -> None:
    line = parse_mt940(read("mt940_two_statements.sta")).lines[2]

    assert line.reference == "/VS2025000125/SS1000002/KS0308"
    assert line.text == "/VS2025000125/SS1000002/KS0308 PLATBA ZA FAKTURU"


def test_it_keeps_a_reversal_apart_from_the_payment_it_reverses() -> None:
    lines = parse_mt940(read("mt940_two_statements.sta")).lines

    assert lines[0].txn_id == "BR25030401"
    assert lines[3].txn_id == "BR25030401/RVSL"
    assert lines[3].reverses == "BR25030401"


def test_it_refuses_statements_that_do_not_chain() -> None:
    data = changed(
        "mt940_two_statements.sta",
        ":60F:C250304PLN1125,00",
        ":60F:C250304PLN1100,00",
        encoding="cp1250",
    )
    data = data.replace(b":62F:C250305PLN1145,00", b":62F:C250305PLN1120,00")
    with pytest.raises(FormatError) as error:
        parse_mt940(data)
    assert error.value.line_no == 23  # the second statement's :60F:
    assert "1100.00" in str(error.value) and "1125.00" in str(error.value)


def test_it_refuses_a_statement_that_does_not_close_at_its_lines() -> None:
    data = changed(
        "mt940_two_statements.sta",
        ":62F:C250305PLN1145,00",
        ":62F:C250305PLN1145,01",
        encoding="cp1250",
    )
    with pytest.raises(FormatError) as error:
        parse_mt940(data)
    assert "1145.01" in str(error.value) and "1145.00" in str(error.value)


def test_it_refuses_two_accounts_in_one_file() -> None:
    text = read("mt940_two_statements.sta").decode("cp1250")
    second = text.rindex(":25:PL61109010140000071219812874")
    data = text[:second] + ":25:PL27114020040000300201355387" + text[second + 32 :]
    with pytest.raises(FormatError, match="PL27114020040000300201355387"):
        parse_mt940(data.encode("cp1250"))


def test_it_names_the_line_of_an_unreadable_field() -> None:
    data = changed(
        "mt940_two_statements.sta",
        ":61:2503050305C200,00NTRFNONREF//BR25030501",
        ":61:2503050305C2OO,00NTRFNONREF//BR25030501",
        encoding="cp1250",
    )
    with pytest.raises(FormatError) as error:
        parse_mt940(data)
    assert error.value.line_no == 24


def test_it_reads_german_sepa_subfields() -> None:
    # ?2x purpose subfields are cut at 27 characters, mid-word; file lines at 65.
    data = (
        b":20:STARTUMS\n:25:37040044/0532013000\n:28C:7/1\n:60F:C250303EUR100,00\n"
        b":61:2503040304CR48,20NMSCNONREF//9876543210\n"
        b":86:166?00SEPA-GUTSCHRIFT?109310?20EREF+RF185390\n"
        b"07547034?21SVWZ+Abschlagszahlungen Str?22om Vertrag 1000001?30COBADEFFXXX\n"
        b"?31DE89370400440532013000?32Max Mustermann\n"
        b":62F:C250304EUR148,20\n"
    )
    line = parse_mt940(data).lines[0]

    assert line.text == "Abschlagszahlungen Strom Vertrag 1000001"
    assert line.reference == "RF18539007547034"
    assert line.payer_name == "Max Mustermann"
    assert line.payer_account == "DE89370400440532013000"
    assert line.amount == D("48.20")
    assert line.txn_id == "9876543210"


# --- collector files ---------------------------------------------------------------


def test_it_reads_the_semicolon_csv_layout_with_bom_and_windows_line_ends() -> None:
    data = read("collector_semicolon.csv")
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data

    parsed = parse_collector(data, SEMICOLON_CSV)

    assert parsed.format == "collector:csv-semicolon"
    assert parsed.account == "" and parsed.business_date == date(2025, 3, 3)
    assert (parsed.control_count, parsed.control_sum) == (4, D("1249.05"))
    first = parsed.lines[0]
    assert first == StatementLine(
        line_no=2,
        txn_id="PR-000001",
        booking_date=date(2025, 3, 3),
        value_date=None,
        amount=D("120.50"),
        currency="RON",
        fee=D("1.20"),
        payer_name="Ion Popescu",
        payer_account="",
        reference="4100123456789",
        text="",
        kind="payment",
        reverses="",
        office_code="010203",
        settlement_ref="DEC-20250303-01",
    )
    assert parsed.lines[1].payer_name == "Maria Ionescu; SRL"
    assert parsed.lines[2].payer_name == "Ștefan Dumitrașcu"
    assert (parsed.lines[3].amount, parsed.lines[3].kind) == (D("-120.50"), "reversal")


def test_it_reads_the_fixed_width_layout() -> None:
    parsed = parse_collector(read("collector_fixed.txt"), FIXED_WIDTH)

    assert parsed.format == "collector:fixed-hdt"
    assert parsed.statement_id == "POCZTA-0303-01"
    assert parsed.business_date == date(2025, 3, 3)
    assert (parsed.control_count, parsed.control_sum) == (3, D("1222.45"))
    assert [
        (line.line_no, line.txn_id, line.amount, line.fee, line.payer_name, line.reference)
        for line in parsed.lines
    ] == [
        (2, "PP-2025-000001", D("123.45"), D("1.50"), "Józef Żółć", "PL83109010140000071200010001"),
        (
            3,
            "PP-2025-000002",
            D("99.00"),
            D("1.50"),
            "Grażyna Łęcka",
            "PL56109010140000071200010002",
        ),
        (4, "PP-2025-000003", D("1000.00"), D("2.00"), "Stanisław Ćwik", "0001000003"),
    ]
    assert {line.office_code for line in parsed.lines} == {"000123", "004567"}
    assert {line.settlement_ref for line in parsed.lines} == {"ROZ-20250303"}


def test_it_reports_every_bad_line_with_its_number() -> None:
    data = changed("collector_semicolon.csv", ";120,50;1,20;", ";12O,50;1,20;")
    data = data.replace(b"03.03.2025;020304;4100123456791", b"31.02.2025;020304;4100123456791")

    with pytest.raises(LineErrors) as error:
        parse_collector(data, SEMICOLON_CSV)

    assert [line_no for line_no, _message in error.value.errors] == [2, 4]
    assert "12O,50" in error.value.errors[0][1]
    assert "31.02.2025" in error.value.errors[1][1]
    assert "line 2" in str(error.value) and "line 4" in str(error.value)


def test_it_reports_a_line_with_an_unclosed_quote() -> None:
    data = changed("collector_semicolon.csv", '"Maria Ionescu; SRL"', '"Maria Ionescu; SRL')
    with pytest.raises(LineErrors) as error:
        parse_collector(data, SEMICOLON_CSV)
    assert [line_no for line_no, _message in error.value.errors] == [3]
    assert "CSV" in error.value.errors[0][1]


def test_it_reports_a_transaction_id_used_twice() -> None:
    data = changed("collector_semicolon.csv", "P;PR-000002;", "P;PR-000001;")
    with pytest.raises(LineErrors) as error:
        parse_collector(data, SEMICOLON_CSV)
    assert error.value.errors[0][0] == 3
    assert "line 2" in error.value.errors[0][1]


def test_it_refuses_a_trailer_that_does_not_match() -> None:
    data = changed("collector_semicolon.csv", "S;4;1249,05", "S;4;1250,05")
    with pytest.raises(FormatError) as error:
        parse_collector(data, SEMICOLON_CSV)
    assert not isinstance(error.value, LineErrors)
    assert "1250.05" in str(error.value) and "1249.05" in str(error.value)
    assert error.value.line_no == 6

    fixed = changed("collector_fixed.txt", "T00000003", "T00000004", encoding="cp1250")
    with pytest.raises(FormatError, match="4 payments"):
        parse_collector(fixed, FIXED_WIDTH)


def test_it_refuses_a_file_cut_short() -> None:
    data = changed("collector_fixed.txt", "T0000000300000000122245", "", encoding="cp1250")
    with pytest.raises(FormatError, match="trailer"):
        parse_collector(data, FIXED_WIDTH)


def test_it_reports_a_file_in_the_wrong_encoding() -> None:
    # A Windows-1250 file read as UTF-8: "ó" of "Józef" on line 2 is not UTF-8.
    with pytest.raises(FormatError) as error:
        parse_collector(
            read("collector_fixed.txt"), dataclasses.replace(FIXED_WIDTH, encoding="utf-8")
        )
    assert error.value.line_no == 2
    assert "utf-8" in str(error.value)


def test_it_builds_a_layout_from_its_stored_form() -> None:
    stored = json.loads(json.dumps(FIXED_WIDTH.to_dict()))
    assert stored["fields"]["amount"] == [106, 118]  # JSON has lists, not tuples

    assert Layout.from_dict(stored) == FIXED_WIDTH
    assert Layout.from_dict({**SEMICOLON_CSV.to_dict(), "currency": "EUR"}).currency == "EUR"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"kind": "xlsx"}, "csv"),
        ({"colour": "red"}, "colour"),
        ({"currency": "euro"}, "three-letter"),
        ({"date_format": "%d.%m"}, "date format"),
        ({"decimal_separator": ";"}, "decimal separator"),
        ({"fields": {"txn_id": 1, "amount": 6, "reference": 4}}, "payment_date"),
        ({"fields": {**SEMICOLON_CSV.fields, "colour": 9}}, "colour"),
        ({"fields": {**SEMICOLON_CSV.fields, "amount": [1, 2]}}, "column"),
        ({"trailer_marker": ""}, "trailer"),
        ({"encoding": "no-such-encoding"}, "no-such-encoding"),
    ],
)
def test_it_refuses_a_bad_layout(change: dict[str, object], words: str) -> None:
    with pytest.raises(FormatError, match=words):
        Layout.from_dict({**SEMICOLON_CSV.to_dict(), **change})


def test_it_refuses_a_fixed_width_position_that_is_not_a_slice() -> None:
    with pytest.raises(FormatError, match="start < end"):
        Layout.from_dict(
            {
                **FIXED_WIDTH.to_dict(),
                "fields": {**FIXED_WIDTH.to_dict()["fields"], "fee": [124, 118]},
            }
        )


# --- detection ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "layout", "format_name"),
    [
        ("camt053_v02.xml", None, "camt.053"),
        ("camt054_v08.xml", SEMICOLON_CSV, "camt.054"),
        ("mt940_two_statements.sta", None, "mt940"),
        ("collector_semicolon.csv", SEMICOLON_CSV, "collector:csv-semicolon"),
        ("collector_fixed.txt", FIXED_WIDTH, "collector:fixed-hdt"),
    ],
)
def test_it_recognises_each_format(name: str, layout: Layout | None, format_name: str) -> None:
    assert detect_and_parse(read(name), layout=layout).format == format_name


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"  \r\n\r\n", "empty"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (b"PK\x03\x04\x14\x00\x06\x00", "ZIP"),
        (bytes(range(256)) * 4, "binary"),
        (b"Dear sir, please find our payments attached.\n", "layout"),
    ],
    ids=["empty", "blank", "pdf", "zip", "garbage", "letter"],
)
def test_it_refuses_what_is_not_a_payment_file(data: bytes, words: str) -> None:
    with pytest.raises(FormatError, match=words):
        detect_and_parse(data)


def test_it_refuses_garbage_even_with_a_layout() -> None:
    with pytest.raises(FormatError, match="binary"):
        detect_and_parse(b"\x00\x01\x02garbage\x00" * 50, layout=SEMICOLON_CSV)
