"""AWS credentials come from the secrets provider when it has them, never from playbooks."""

from __future__ import annotations

from finfocus.secrets import EnvironmentSecrets
from services.remediation.actions import REGISTRY
from services.remediation.cloud import AwsClients, implementations


def test_secrets_provider_credentials_are_used_by_boto3_clients(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-chain")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-chain")
    secrets = EnvironmentSecrets(
        {
            "FINFOCUS_SECRET_AWS_CREDENTIALS_ACCESS_KEY_ID": "from-vault",
            "FINFOCUS_SECRET_AWS_CREDENTIALS_SECRET_ACCESS_KEY": "s3cret",
        }
    )
    client = AwsClients(secrets).client("ec2", "eu-west-1")
    creds = client._request_signer._credentials
    assert (creds.access_key, client.meta.region_name) == ("from-vault", "eu-west-1")
    assert (
        AwsClients(EnvironmentSecrets({}))
        .client("ec2", None)
        ._request_signer._credentials.access_key
        == "from-chain"
    )


def test_every_registered_action_has_an_implementation():
    assert set(implementations()) == set(REGISTRY)
