"""Column mappings of a review's findings to audit controls (docs/reviews.md).

Each mapping names the control and, in order, the evidence columns an auditor of that
control reads, each drawn from one field of a finding (``report.Finding``).
"""

from __future__ import annotations

from dataclasses import dataclass

from auditstream.reviews.report import Finding


@dataclass(frozen=True)
class Mapping:
    key: str
    control: str
    statement: str
    columns: tuple[tuple[str, str], ...]
    """(heading, finding field)."""

    def row(self, f: Finding, section_title: str) -> list[str]:
        values = {**f.__dict__, "section_title": section_title, "control": self.control}
        values["event_ids"] = " ".join(f.event_ids)
        return [str(values[field]) for _, field in self.columns]


SOC2_CC72 = Mapping(
    key="soc2-cc7.2",
    control="SOC 2 CC7.2",
    statement=(
        "The entity monitors system components and the operation of those controls for "
        "anomalies that are indicative of malicious acts, natural disasters, and errors "
        "affecting the entity's ability to meet its objectives; anomalies are analyzed to "
        "determine whether they represent security events."
    ),
    columns=(
        ("Control", "control"),
        ("Monitoring activity", "section_title"),
        ("Detected at (UTC)", "occurred_at"),
        ("Anomaly", "detail"),
        ("Actor", "actor_id"),
        ("Action", "action"),
        ("Resource", "resource"),
        ("Outcome", "outcome"),
        ("Source IP", "ip"),
        ("Evidence (event ids)", "event_ids"),
    ),
)
ISO27001_A815 = Mapping(
    key="iso27001-a8.15",
    control="ISO/IEC 27001:2022 A.8.15",
    statement=(
        "Logging: logs that record activities, exceptions, faults and other relevant events "
        "are produced, stored, protected and analysed (user IDs, system activities, dates and "
        "times, device identity or location, network addresses, successful and rejected "
        "attempts, changes to configuration)."
    ),
    columns=(
        ("Control", "control"),
        ("Event type", "section_title"),
        ("Date and time (UTC)", "occurred_at"),
        ("User ID", "actor_id"),
        ("System activity", "action"),
        ("Resource", "resource"),
        ("Success / failure", "outcome"),
        ("Network address", "ip"),
        ("Location", "country"),
        ("Change description", "changes"),
        ("Detail", "detail"),
        ("Event ID", "event_ids"),
    ),
)
MAPPINGS: dict[str, Mapping] = {m.key: m for m in (SOC2_CC72, ISO27001_A815)}


def mapping(key: str) -> Mapping:
    try:
        return MAPPINGS[key]
    except KeyError:
        raise ValueError(f"unknown control mapping {key!r}: {', '.join(MAPPINGS)}") from None
