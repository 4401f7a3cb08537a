"""Which failures of a consumer's work are the infrastructure's (retry them), which are the
data's (bisect and dead-letter the culprit), and how long to wait between retries."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import asyncpg
from aiokafka.errors import KafkaError


class NotArrivedYet(Exception):
    """What a record depends on has not reached this service's own copy yet (another topic,
    consumed at its own pace): retried like an outage, never dead-lettered."""


#: errors of the infrastructure, not of the data: retried, never dead-lettered
TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,  # asyncio.TimeoutError too
    socket.gaierror,  # a name that does not resolve (yet)
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExist, ConnectionFailure, ...
    asyncpg.InterfaceError,  # "connection is closed", pool closing
    asyncpg.exceptions.OperatorInterventionError,  # CannotConnectNow, AdminShutdown, CrashShutdown
    asyncpg.exceptions.InsufficientResourcesError,  # TooManyConnections, DiskFull, OutOfMemory
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.LockNotAvailableError,
    NotArrivedYet,
)
#: aiokafka's errors by name where the class is not importable in every version
TRANSIENT_NAMES = frozenset(
    {
        "KafkaConnectionError",
        "KafkaTimeoutError",
        "NodeNotReadyError",
        "RequestTimedOutError",
        "BatchBufferOverflowException",
        "NotLeaderForPartitionError",
        "LeaderNotAvailableError",
        "CoordinatorNotAvailableError",
        "NotCoordinatorError",
        "CoordinatorLoadInProgressError",
        "UnknownTopicOrPartitionError",
        "NotEnoughReplicasError",
        "ProducerClosed",
    }
)
#: the store refuses this data: bisect to the culprit and dead-letter it
DATA_ERROR_TYPES: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,  # e.g. an index row too large
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_transient(exc: BaseException) -> bool:
    """True for an infrastructure error worth retrying (in the exception or its causes)."""
    for e in _chain(exc):
        if isinstance(e, DATA_ERROR_TYPES):
            return False
        # a bare OSError is how asyncpg reports a connect that failed on every address; its
        # subclasses other than the above (FileNotFoundError, PermissionError) are no outage
        if (
            isinstance(e, TRANSIENT_TYPES)
            or type(e) is OSError
            or type(e).__name__ in TRANSIENT_NAMES
        ):
            return True
        if isinstance(e, KafkaError) and getattr(e, "retriable", False):
            return True
    return False


def is_data_error(exc: BaseException) -> bool:
    """True when the database refused the data itself (bisect, dead-letter the culprit)."""
    return any(isinstance(e, DATA_ERROR_TYPES) for e in _chain(exc))


@dataclass
class RetryPolicy:
    """Backoff of transient retries, and how often another error is retried before the
    partition is paused."""

    base_s: float = 0.2
    cap_s: float = 10.0
    max_failures: int = 3
    stall_retry_s: float = 60.0

    def delay(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * (2 ** min(attempt, 20)))
