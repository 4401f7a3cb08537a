"""Settings of the forecast service (environment variables `FINFOCUS_FORECAST_*`)."""

from __future__ import annotations

from pydantic import Field

from finfocus.settings import ServiceSettings


class ForecastSettings(ServiceSettings):
    """How often and how far the forecast service forecasts."""

    service_name: str = "forecast"
    forecast_horizon: int = Field(
        92, ge=7, le=400, description="Days forecast after trained_through"
    )
    forecast_debounce_seconds: float = Field(
        10.0, ge=0, description="Quiet time after the last stored batch before a refit starts"
    )
    forecast_schedule_seconds: float = Field(
        3600.0, gt=0, description="How often the scheduler checks for a new complete day"
    )
    forecast_executor: str = Field(
        "process", pattern="^(process|thread|inline)$", description="Where model fitting runs"
    )
    forecast_tag_keys: str = Field(
        "*",
        description="Tag keys forecast as dimensions: '*' for every key seen, '' for none, or a list",
    )
    forecast_max_tag_keys: int = Field(
        20, ge=0, description="Cap on automatically discovered tag keys"
    )
    forecast_cv_windows: int = Field(
        2, ge=1, le=8, description="Rolling-origin windows for model choice"
    )
    forecast_reselect_days: int = Field(
        7, ge=0, description="Days a model choice is reused before cross-validation runs again"
    )
    forecast_cv_horizon: int = Field(7, ge=1, le=60, description="Days forecast in each CV window")
