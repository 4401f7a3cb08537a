"""The model engine: many daily series in, forecasts with 80/95 % intervals out.

Runs in a worker process (CPU heavy); takes and returns plain floats so it pickles cheaply.
"""

from __future__ import annotations

from services.forecast.domain import RawForecast, seasonal_naive


def fit_many(
    tasks: list[tuple[str, list[float]]], horizon: int, cv_windows: int = 2, cv_horizon: int = 7
) -> dict[str, RawForecast]:
    """Forecast every series `horizon` days ahead; keyed like `tasks`."""
    return {key: seasonal_naive(y, horizon) for key, y in tasks}
