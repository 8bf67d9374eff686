"""The detectors the worker runs: an explicit list, no registration by import."""

from __future__ import annotations

from typing import Any

from auditstream.detectors.base import Detector
from auditstream.detectors.brute_force import BruteForce, PasswordSpraying
from auditstream.detectors.failures import (
    AccountSignInFailures,
    SlowAccountSignInFailures,
    SlowSourceSignInFailures,
    SourceSignInFailures,
)
from auditstream.detectors.geo import ImpossibleTravel, NewLocation
from auditstream.detectors.geoip import GeoResolver
from auditstream.detectors.mass_action import (
    InvitationSurge,
    MassDeletion,
    MassExport,
    MassPermissionChange,
)
from auditstream.detectors.privilege import FirstSettingsChange, PrivilegeEscalation
from auditstream.detectors.sign_in_time import OffHoursSignIn


def default_detectors() -> list[Detector[Any]]:
    geo = GeoResolver()  # one offline database and cache for the detectors that place events
    return [
        MassDeletion(),
        MassExport(),
        MassPermissionChange(),
        InvitationSurge(),
        PrivilegeEscalation(),
        FirstSettingsChange(),
        BruteForce(),
        PasswordSpraying(),
        AccountSignInFailures(),
        SourceSignInFailures(),
        SlowAccountSignInFailures(),
        SlowSourceSignInFailures(),
        OffHoursSignIn(geo),
        NewLocation(geo),
        ImpossibleTravel(geo),
    ]
