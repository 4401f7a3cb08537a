"""Secrets: Vault KV v2 through hvac when `VAULT_ADDR` is set, the environment otherwise.

Secret values never reach logs: `Secret` prints as `**********`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Secret:
    """A secret value that does not print itself."""

    value: str

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def reveal(self) -> str:
        """The clear value, to hand to a client library and nowhere else."""
        return self.value


class SecretsProvider(Protocol):
    """Looks up a secret by name, e.g. `slack-webhook-url` or `aws/credentials`."""

    name: str

    def get(self, key: str, field: str = "value") -> Secret | None: ...


class EnvironmentSecrets:
    """Secrets from environment variables: `slack-webhook-url` reads `FINFOCUS_SECRET_SLACK_WEBHOOK_URL`.

    `field` other than `value` appends its name (`aws/credentials`, field `access_key_id` reads
    `FINFOCUS_SECRET_AWS_CREDENTIALS_ACCESS_KEY_ID`).
    """

    name = "environment"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ

    @staticmethod
    def variable(key: str, field: str = "value") -> str:
        parts = [key] if field == "value" else [key, field]
        token = "_".join(parts).upper()
        return "FINFOCUS_SECRET_" + "".join(c if c.isalnum() else "_" for c in token)

    def get(self, key: str, field: str = "value") -> Secret | None:
        value = self._environ.get(self.variable(key, field))
        return Secret(value) if value is not None else None


class VaultSecrets:
    """Secrets from Vault KV v2: `key` is the path under the mount, `field` a key of its data."""

    name = "vault"

    def __init__(
        self, url: str, token: str, mount: str = "secret", prefix: str = "finfocus"
    ) -> None:
        import hvac  # imported here: nothing connects at import time

        self._client = hvac.Client(url=url, token=token)
        self._mount = mount
        self._prefix = prefix.strip("/")
        self._cache: dict[str, dict[str, str]] = {}

    def _read(self, key: str) -> dict[str, str] | None:
        if key not in self._cache:
            import hvac.exceptions

            path = f"{self._prefix}/{key}" if self._prefix else key
            try:
                response = self._client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self._mount, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath:
                return None
            self._cache[key] = response["data"]["data"]
        return self._cache[key]

    def get(self, key: str, field: str = "value") -> Secret | None:
        data = self._read(key)
        if not data or field not in data:
            return None
        return Secret(str(data[field]))


def secrets_from_environment(environ: Mapping[str, str] | None = None) -> SecretsProvider:
    """Vault when `VAULT_ADDR` is set (with `VAULT_TOKEN`), the environment otherwise."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    if env.get("VAULT_ADDR"):
        return VaultSecrets(
            env["VAULT_ADDR"],
            env.get("VAULT_TOKEN", ""),
            mount=env.get("FINFOCUS_VAULT_MOUNT", "secret"),
            prefix=env.get("FINFOCUS_VAULT_PREFIX", "finfocus"),
        )
    return EnvironmentSecrets(env)
