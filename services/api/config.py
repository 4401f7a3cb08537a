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

    # OIDC bearer tokens (services/api/oidc.py): off unless an issuer is set. These are
    # deployment-wide identity settings, named FINFOCUS_OIDC_* (not FINFOCUS_API_*).
    #: the issuer URL (https; http only on a loopback address), e.g. https://id.example.com/realms/x
    oidc_issuer: str | None = None
    #: the `aud` a token must carry (required with an issuer)
    oidc_audience: str | None = None
    #: the claim holding the role (dotted path for nested claims: realm_access.roles)
    oidc_role_claim: str = "roles"
    #: claim value to role: "finops-admins=admin,finops-approvers=approver,staff=viewer";
    #: empty: values named viewer, approver, admin are taken as they are
    oidc_roles: str = ""
    #: accepted signature algorithms (asymmetric only)
    oidc_algorithms: str = "RS256,ES256"
    #: seconds of clock skew allowed on exp, nbf and iat
    oidc_leeway_s: float = Field(30, ge=0, le=300)
