"""Settings of the api service (env prefix FINFOCUS_, like every service)."""

from __future__ import annotations

from pydantic import Field

from finfocus.settings import ServiceSettings

DEFAULT_PORT = 8770


class ApiSettings(ServiceSettings):
    service_name: str = "api"
    api_host: str = "127.0.0.1"
    #: 0 picks a free port (the chosen address is written to FINFOCUS_HOME/run/api.url)
    api_port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    #: hours a console session lasts
    api_session_hours: float = Field(12, gt=0)
    #: failed logins allowed per user name and per client address in `api_login_window_s`
    api_login_attempts: int = Field(5, ge=1)
    api_login_window_s: float = Field(300, gt=0)
    #: mark cookies Secure (set it behind TLS; off for http://127.0.0.1)
    api_cookie_secure: bool = False
    #: seconds a decision waits for the owning service's view to show it (then 202)
    api_decision_wait_s: float = Field(5.0, ge=0, le=30)
