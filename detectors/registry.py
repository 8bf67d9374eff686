"""The detectors the worker runs: an explicit list, no registration by import."""

from __future__ import annotations

from typing import Any

from auditstream.detectors.base import Detector
from auditstream.detectors.mass_action import (
    InvitationSurge,
    MassDeletion,
    MassExport,
    MassPermissionChange,
)
from auditstream.detectors.privilege import FirstSettingsChange, PrivilegeEscalation


def default_detectors() -> list[Detector[Any]]:
    return [
        MassDeletion(),
        MassExport(),
        MassPermissionChange(),
        InvitationSurge(),
        PrivilegeEscalation(),
        FirstSettingsChange(),
    ]
