"""Per-tenant detector settings from one TOML file, validated in full at start-up.

    [defaults]                    # every detector, every tenant
    suppress_minutes = 60
    [defaults.mass_deletion]      # one detector, every tenant
    threshold = 25
    [tenants.acme]                # every detector, one tenant
    timezone = "Europe/Berlin"
    [tenants.acme.mass_deletion]  # one detector, one tenant
    threshold = 100
    allowed_actors = ["usr_admin"]

Later sections override earlier ones in that order. Unknown detectors or settings, and
values of the wrong type, stop the worker at start with the exact place in the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from auditstream.detectors.base import Detector, DetectorSettings


class DetectorConfigError(ValueError):
    """The detector configuration is invalid; the message names the file, section and field."""


@dataclass(frozen=True)
class DetectionConfig:
    defaults: Mapping[str, DetectorSettings]
    tenants: Mapping[str, Mapping[str, DetectorSettings]]

    def settings(self, tenant_id: str, detector: str) -> DetectorSettings:
        tenant = self.tenants.get(tenant_id)
        if tenant is not None and detector in tenant:
            return tenant[detector]
        return self.defaults[detector]


def _split(section: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(scalar settings for every detector, per-detector tables)."""
    common = {k: v for k, v in section.items() if not isinstance(v, dict)}
    specific = {k: v for k, v in section.items() if isinstance(v, dict)}
    return common, specific


def build(
    document: Mapping[str, Any], detectors: Sequence[Detector[Any]], source: str = "config"
) -> DetectionConfig:
    by_name = {d.name: d for d in detectors}
    unknown_top = set(document) - {"defaults", "tenants"}
    if unknown_top:
        raise DetectorConfigError(
            f"{source}: unknown section(s) {sorted(unknown_top)}; use [defaults] and [tenants.<id>]"
        )

    def check_names(where: str, names: Any) -> None:
        unknown = sorted(set(names) - set(by_name))
        if unknown:
            raise DetectorConfigError(
                f"{source}: [{where}] names unknown detector(s) {unknown}; "
                f"known: {', '.join(sorted(by_name))}"
            )

    def make(where: str, detector: Detector[Any], values: dict[str, Any]) -> DetectorSettings:
        try:
            return detector.settings.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '?'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise DetectorConfigError(f"{source}: [{where}] {problems}") from None

    common, specific = _split(document.get("defaults", {}))
    check_names("defaults", specific)
    base_values = {name: {**common, **specific.get(name, {})} for name in by_name}
    defaults = {
        name: make(f"defaults.{name}", by_name[name], base_values[name]) for name in by_name
    }
    tenants: dict[str, dict[str, DetectorSettings]] = {}
    for tenant_id, section in (document.get("tenants") or {}).items():
        if not isinstance(section, dict):
            raise DetectorConfigError(f"{source}: tenants.{tenant_id} must be a table")
        t_common, t_specific = _split(section)
        check_names(f"tenants.{tenant_id}", t_specific)
        tenants[tenant_id] = {
            name: make(
                f"tenants.{tenant_id}.{name}",
                by_name[name],
                {**base_values[name], **t_common, **t_specific.get(name, {})},
            )
            for name in by_name
        }
    return DetectionConfig(defaults=defaults, tenants=tenants)


def load(path: Path | None, detectors: Sequence[Detector[Any]]) -> DetectionConfig:
    """Settings from ``path`` (or the built-in defaults when None)."""
    if path is None:
        return build({}, detectors, "built-in defaults")
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise DetectorConfigError(
            f"{path}: no such file (AUDITSTREAM_DETECTORS_CONFIG); unset it for the defaults"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise DetectorConfigError(f"{path}: not valid TOML: {exc}") from None
    return build(document, detectors, str(path))
