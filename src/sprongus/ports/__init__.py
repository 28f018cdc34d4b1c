"""Ports: one small Protocol per capability the domain needs. Domain types only, never a vendor type."""

from sprongus.ports.audit import AuditSink, AuditTrail
from sprongus.ports.clock import Clock
from sprongus.ports.crypto import DataCipher, HmacKeyring, MasterKeyProvider, WrappedKey
from sprongus.ports.rate_limit import RateLimitDecision, RateLimiter
from sprongus.ports.repository import SecretRepository, UnitOfWork

__all__ = [
    "AuditSink",
    "AuditTrail",
    "Clock",
    "DataCipher",
    "HmacKeyring",
    "MasterKeyProvider",
    "RateLimitDecision",
    "RateLimiter",
    "SecretRepository",
    "UnitOfWork",
    "WrappedKey",
]
