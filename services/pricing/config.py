"""Settings of the pricing service (environment variables prefixed FINFOCUS_)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import Field

from finfocus.settings import ServiceSettings


class PricingSettings(ServiceSettings):
    """Pricing settings on top of the shared base."""

    service_name: str = "pricing"
    pricing_batch_max_records: int = Field(10000, ge=1, description="Records per consumed batch")
    pricing_specs_dir: Path | None = Field(
        None, description="YAML price specs (default FINFOCUS_HOME/specs)"
    )
    pricing_plugins_dir: Path | None = Field(
        None, description="Plugins (default FINFOCUS_HOME/plugins)"
    )
    pricing_plugin_timeout_s: float = Field(10.0, gt=0, description="Deadline of one plugin call")
    pricing_plugin_retries: int = Field(2, ge=0, description="Retries of a failed plugin call")
    pricing_cache_ttl_s: float = Field(
        3600.0, ge=0, description="How long plugin answers are cached"
    )
    pricing_builtin_plugins: str = Field(
        "aws-public", description="Comma-separated built-in plugins to run ('' for none)"
    )
    pricing_aws_offers_dir: Path | None = Field(
        None, description="Directory of AWS bulk offer files"
    )
    pricing_opencost_url: str | None = Field(None, description="OpenCost allocation API base URL")
    pricing_catalog_refresh_s: float = Field(
        86400, ge=0, description="Catalog refresh period when plugins run (0: off)"
    )
    #: FINFOCUS_BROKER_EPOCH / FINFOCUS_BROKER_RECOVER_SINCE: set by the embedded stack; under
    #: an epoch pricing has not recorded, the lines stored since then are published again
    broker_epoch: str | None = Field(None, description="Embedded broker epoch (set by the stack)")
    broker_recover_since: datetime | None = Field(
        None,
        description="After a broker loss: re-publish lines stored since then (set by the stack)",
    )

    @property
    def specs_dir(self) -> Path:
        return self.pricing_specs_dir or self.home / "specs"

    @property
    def plugins_dir(self) -> Path:
        return self.pricing_plugins_dir or self.home / "plugins"
