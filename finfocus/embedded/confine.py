"""What the embedded stack's children may see: a private FINFOCUS_HOME (0700 directories,
0600 files, nothing above it touched) and the environment each service inherits."""

from __future__ import annotations

import os
from pathlib import Path

#: issuers whose bus signing keys `up` creates under FINFOCUS_HOME/secrets
SIGNING_ISSUERS = ["ingest", "pricing", "anomaly", "forecast", "remediation", "cli", "api"]
#: what a service process inherits from the supervisor's environment, and no more
_SERVICE_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
)
_SERVICE_ENV_PREFIXES = ("LC_", "PYTHON", "OTEL_", "FINFOCUS_", "VAULT_")
#: services that talk to AWS themselves (S3 watch, cloud executors) get the AWS_* variables
AWS_SERVICES = frozenset({"ingest", "remediation"})


def service_environment(
    service: str | None, environ: dict[str, str] | os._Environ
) -> dict[str, str]:
    """The part of `environ` a service may see: locale, Python, OTEL, FinFocus (secrets
    provider included) and Vault; AWS credentials only for the services that call AWS."""
    keep = {}
    for key, value in environ.items():
        if (
            key in _SERVICE_ENV
            or key.startswith(_SERVICE_ENV_PREFIXES)
            or (key.startswith("AWS_") and service in AWS_SERVICES)
        ):
            keep[key] = value
    keep.pop("FINFOCUS_BROKER_EPOCH", None)
    return keep


def make_private_home(home: Path) -> None:
    """FINFOCUS_HOME and what the stack writes in it: 0700 directories, 0600 files.

    Only FINFOCUS_HOME itself and below: the directories above it are never touched.
    """
    os.umask(0o077)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.chmod(0o700)
    for sub in ("logs", "run", "secrets"):
        (home / sub).mkdir(exist_ok=True, mode=0o700)
        (home / sub).chmod(0o700)
    for log in (home / "logs").glob("*.log"):
        log.chmod(0o600)
