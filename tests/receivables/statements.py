"""Builders for statement files used by the receivables tests (not fixtures on disk:
each test says exactly what its file holds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"


@dataclass
class Tx:
    amount: str
    ref: str = ""  # structured creditor reference (RF…)
    text: str = ""  # unstructured remittance
    iban: str = ""  # payer account
    name: str = "Payer"
    bank_ref: str = ""  # AcctSvcrRef of the entry
    reversal: bool = False
    booked: bool = True
    day: str = "2026-11-02"
    extra: dict[str, str] = field(default_factory=dict)


def _entry(tx: Tx, n: int) -> str:
    direction = "DBIT" if tx.reversal else "CRDT"
    amount = Decimal(tx.amount)
    rmt = ""
    if tx.ref:
        rmt += (
            "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>"
            f"<Ref>{tx.ref}</Ref></CdtrRefInf></Strd>"
        )
    if tx.text:
        rmt += f"<Ustrd>{tx.text}</Ustrd>"
    status = "BOOK" if tx.booked else "PDNG"
    reversal = "<RvslInd>true</RvslInd>" if tx.reversal else ""
    return f"""
    <Ntry>
      <Amt Ccy="EUR">{amount:.2f}</Amt>
      <CdtDbtInd>{direction}</CdtDbtInd>
      {reversal}
      <Sts>{status}</Sts>
      <BookgDt><Dt>{tx.day}</Dt></BookgDt>
      <ValDt><Dt>{tx.day}</Dt></ValDt>
      <AcctSvcrRef>{tx.bank_ref or f"BANK{n:06d}"}</AcctSvcrRef>
      <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
      <NtryDtls><TxDtls>
        <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
        <AmtDtls><TxAmt><Amt Ccy="EUR">{amount:.2f}</Amt></TxAmt></AmtDtls>
        <RltdPties>
          <Dbtr><Nm>{tx.name}</Nm></Dbtr>
          {f"<DbtrAcct><Id><IBAN>{tx.iban}</IBAN></Id></DbtrAcct>" if tx.iban else ""}
        </RltdPties>
        {f"<RmtInf>{rmt}</RmtInf>" if rmt else ""}
      </TxDtls></NtryDtls>
    </Ntry>"""


def camt053(txs: list[Tx], *, statement: str = "STMT-1",
            account: str = "RO49AAAA1B31007593840000") -> bytes:
    entries = "".join(_entry(tx, n) for n, tx in enumerate(txs, start=1))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{NS}">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>{statement}</MsgId><CreDtTm>2026-11-02T18:00:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>{statement}</Id>
      <CreDtTm>2026-11-02T18:00:00</CreDtTm>
      <Acct><Id><IBAN>{account}</IBAN></Id><Ccy>EUR</Ccy></Acct>
      {entries}
    </Stmt>
  </BkToCstmrStmt>
</Document>
""".encode()
