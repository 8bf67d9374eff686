"""A review report as JSON, CSV (one row per finding, in a control's columns) or PDF.

The PDF is made with fpdf2 and the DejaVu fonts shipped in ``reviews/fonts`` (their license
beside them), so it renders the same on any machine and any text the log holds. Its cover
page names the period, tenant, generator version, the verification and reconciliation
results and the fingerprint of the checkpoint-signing key.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import orjson

from auditstream.reviews.controls import Mapping
from auditstream.reviews.report import Finding, Report

FONTS = Path(__file__).parent / "fonts"


def _csv_cell(value: str) -> str:
    from auditstream.cli.render import csv_cell

    return csv_cell(value)


def to_json(report: Report) -> bytes:
    return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2)


def to_csv(report: Report, m: Mapping) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([h for h, _ in m.columns])
    for s in report.sections:
        for f in s.findings:
            writer.writerow([_csv_cell(v) for v in m.row(f, s.title)])
    return out.getvalue()


PDF_IDS = 3
"""Event ids a PDF row shows (a table row must fit a page); CSV and JSON hold them all."""


def _short(f: Finding) -> Finding:
    more = len(f.event_ids) - PDF_IDS
    if more <= 0:
        return f
    return replace(f, event_ids=(*f.event_ids[:PDF_IDS], f"(+{more} more)"))


def _period(report: Report) -> str:
    return f"{report.period_from:%Y-%m-%d %H:%M} to {report.period_to:%Y-%m-%d %H:%M} UTC"


def to_pdf(report: Report, m: Mapping) -> bytes:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(orientation="L", format="A4")
    pdf.set_title(f"Audit review {report.review_id}")
    pdf.set_creator(report.generator)
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(True, margin=12)

    def line(text: str, size: float = 10, bold: bool = False, height: float = 6) -> None:
        pdf.set_font("DejaVu", "B" if bold else "", size)
        pdf.multi_cell(0, height, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    # -- cover ----------------------------------------------------------------------------
    pdf.add_page()
    line("Audit log review", 26, True, 14)
    line(f"Evidence for {m.control}", 14, False, 9)
    pdf.ln(6)
    c = report.completeness
    facts = [
        ("Tenant", report.tenant),
        ("Period", _period(report)),
        ("Generated", f"{report.generated_at:%Y-%m-%d %H:%M:%S} UTC by {report.generator}"),
        ("Verification", c.verification),
        ("Reconciliation", c.reconciliation),
        ("Public key fingerprint", report.key_fingerprint or "none (no signing key)"),
        ("Events in period", f"{report.total} (previous period: {report.previous_total})"),
        ("Findings", str(len(report.findings()))),
        (
            "Signed off",
            "; ".join(f"{s['by']} at {s['at']}: {s['note']}" for s in report.signoffs) or "not yet",
        ),
    ]
    for label, value in facts:
        pdf.set_font("DejaVu", "B", 11)
        pdf.cell(62, 8, label)
        pdf.set_font("DejaVu", "", 11)
        pdf.multi_cell(0, 8, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    line(m.statement, 9, height=5)

    # -- summary and completeness ---------------------------------------------------------
    pdf.add_page()
    line("Counts and trend", 16, True, 10)
    line(f"{report.total} events; previous period of the same length: {report.previous_total}.")
    with pdf.table(col_widths=(40, 30), width=70, align="LEFT", text_align="LEFT") as t:
        t.row(["Day (UTC)", "Events"])
        for day, n in report.by_day:
            t.row([day, str(n)])
    pdf.ln(4)
    line("Completeness", 16, True, 10)
    line(f"Verification: {c.verification}", bold=True)
    for d in c.verification_detail:
        line(d, 9, height=5)
    line(f"Reconciliation: {c.reconciliation}", bold=True)
    for d in c.reconciliation_detail:
        line(d, 9, height=5)
    if report.drills:
        line("Export-and-restore drills", bold=True)
        for drill in report.drills:
            line(f"{drill['at']}: {drill['outcome']} (event {drill['event_id']})", 9, height=5)

    # -- the checklist --------------------------------------------------------------------
    for s in report.sections:
        pdf.add_page()
        line(s.title, 16, True, 10)
        if not s.findings:
            line("No findings.")
            continue
        more = f" (and {s.more} more)" if s.more else ""
        line(f"{len(s.findings)} findings{more}.", 10)
        pdf.set_font("DejaVu", "", 7)
        with pdf.table(text_align="LEFT", line_height=4) as t:
            t.row([h for h, _ in m.columns])
            for f in s.findings:
                t.row(m.row(_short(f), s.title))
    return bytes(pdf.output())
