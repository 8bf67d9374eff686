"""How our Kafka clients authenticate: one frozen setting, three client dialects.

``KafkaSecurity`` comes from the environment (``Settings.from_env``):

- ``KAFKA_SECURITY_PROTOCOL``: ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT``,
  ``SASL_SSL``;
- ``KAFKA_SASL_MECHANISM``: ``PLAIN`` (default), ``SCRAM-SHA-256``, ``SCRAM-SHA-512``;
  ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``;
- ``KAFKA_SSL_CA_LOCATION`` (PEM; default: the system's CAs), and for mutual TLS
  ``KAFKA_SSL_CERTIFICATE_LOCATION`` + ``KAFKA_SSL_KEY_LOCATION``.

and becomes librdkafka settings (the SDK, the sink, admin clients, ``alerts tail``) or Faust
credentials (the stream worker, through aiokafka). The password never appears in a repr.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurityError(ValueError):
    """A security setting that cannot work, with what to set instead."""


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise KafkaSecurityError(
                f"KAFKA_SECURITY_PROTOCOL={self.protocol!r}: use one of {', '.join(PROTOCOLS)}"
            )
        if self.sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise KafkaSecurityError(
                    f"KAFKA_SASL_MECHANISM={self.sasl_mechanism!r}: use one of "
                    f"{', '.join(MECHANISMS)}"
                )
            if not self.sasl_username or self.sasl_password is None:
                raise KafkaSecurityError(
                    f"KAFKA_SECURITY_PROTOCOL={self.protocol} needs KAFKA_SASL_USERNAME and "
                    "KAFKA_SASL_PASSWORD"
                )
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise KafkaSecurityError(
                "mutual TLS needs both KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION"
            )
        for name, path in (
            ("KAFKA_SSL_CA_LOCATION", self.ssl_ca_location),
            ("KAFKA_SSL_CERTIFICATE_LOCATION", self.ssl_certificate_location),
            ("KAFKA_SSL_KEY_LOCATION", self.ssl_key_location),
        ):
            if path is not None and not self.tls:
                raise KafkaSecurityError(
                    f"{name} is set but KAFKA_SECURITY_PROTOCOL={self.protocol} does not use "
                    "TLS: use SSL or SASL_SSL"
                )
            if path is not None and not path.is_file():
                raise KafkaSecurityError(f"{name}={path}: no such file")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        def path(name: str) -> Path | None:
            value = env.get(name, "").strip()
            return Path(value) if value else None

        return cls(
            protocol=(env.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").strip().upper(),
            sasl_mechanism=(env.get("KAFKA_SASL_MECHANISM") or "PLAIN").strip().upper(),
            sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
            sasl_password=env.get("KAFKA_SASL_PASSWORD"),
            ssl_ca_location=path("KAFKA_SSL_CA_LOCATION"),
            ssl_certificate_location=path("KAFKA_SSL_CERTIFICATE_LOCATION"),
            ssl_key_location=path("KAFKA_SSL_KEY_LOCATION"),
        )

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def librdkafka(self) -> dict[str, str]:
        """For confluent-kafka clients (merged into their config)."""
        out = {"security.protocol": self.protocol}
        if self.sasl:
            out["sasl.mechanism"] = self.sasl_mechanism
            out["sasl.username"] = self.sasl_username or ""
            out["sasl.password"] = self.sasl_password or ""
        optional = {
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
        }
        out.update({key: str(value) for key, value in optional.items() if value is not None})
        return out

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=str(self.ssl_ca_location) if self.ssl_ca_location else None
        )
        if self.ssl_certificate_location is not None and self.ssl_key_location is not None:
            context.load_cert_chain(self.ssl_certificate_location, self.ssl_key_location)
        return context

    def faust_credentials(self) -> Any:
        """For the Faust app's ``broker_credentials`` (None: plaintext)."""
        import faust

        if self.protocol == "PLAINTEXT":
            return None
        if self.protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context())
        return faust.SASLCredentials(
            username=self.sasl_username,
            password=self.sasl_password,
            mechanism=self.sasl_mechanism,
            ssl_context=self.ssl_context() if self.tls else None,
        )
