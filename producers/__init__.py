"""Producer SDK: how services record audit events. See docs/producer-sdk.md."""

from auditstream.producers.aio import AsyncAuditProducer
from auditstream.producers.config import Durability, Fsync, IpPolicy, OnFull, ProducerConfig
from auditstream.producers.delivery import DeliveryStats
from auditstream.producers.diff import field_changes
from auditstream.producers.errors import (
    BufferFull,
    EventTooLarge,
    InvalidEvent,
    Problem,
    ProducerClosed,
    ProducerError,
    SpoolError,
)
from auditstream.producers.producer import AuditProducer

__all__ = [
    "AsyncAuditProducer",
    "AuditProducer",
    "BufferFull",
    "DeliveryStats",
    "Durability",
    "EventTooLarge",
    "Fsync",
    "InvalidEvent",
    "IpPolicy",
    "OnFull",
    "Problem",
    "ProducerClosed",
    "ProducerConfig",
    "ProducerError",
    "SpoolError",
    "field_changes",
]
