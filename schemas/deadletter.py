"""DeadLetter v1: what a consumer could not process, published on `<topic>.dlq`."""

from __future__ import annotations

import base64

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import Timestamp


class DeadLetterV1(BaseModel):
    """The original bytes with the reason they were refused and where they came from."""

    model_config = ConfigDict(extra="forbid")

    original: str = Field(description="Original message value (UTF-8 text, or base64)")
    original_encoding: str = Field("utf-8", description="'utf-8' or 'base64'")
    original_key: str | None = Field(None, description="Original message key, if any")
    error: str = Field(description="Why the message was refused")
    source_topic: str = Field(description="Topic the message was read from")
    source_partition: int | None = Field(None, description="Partition it was read from")
    source_offset: int | None = Field(None, description="Offset it was read at")
    service: str = Field(description="Service that refused it")
    failed_at: Timestamp = Field(description="When it was refused")

    @staticmethod
    def encode_original(raw: bytes) -> tuple[str, str]:
        """Text when the bytes are UTF-8, base64 otherwise: nothing is lost either way."""
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"
