"""Producer SDK: how services record audit events."""

from auditstream.producers.producer import (
    AuditProducer,
    DeliveryStats,
    DeliveryTimeout,
    ProducerConfig,
)
from auditstream.schemas.codec import EventTooLarge

__all__ = ["AuditProducer", "DeliveryStats", "DeliveryTimeout", "EventTooLarge", "ProducerConfig"]
