"""Signed bus messages: only a trusted issuer's exact bytes on the same topic verify."""

import stat

import pytest

from finfocus.secrets import EnvironmentSecrets
from finfocus.signing import (
    SIGNATURE_HEADER,
    SigningKeys,
    UntrustedMessage,
    ensure_key_files,
    sign,
    verify,
)


def keys(tmp_path, env=None):
    return SigningKeys(EnvironmentSecrets(env or {}), home=tmp_path)


def test_signed_message_verifies_and_names_its_issuer(tmp_path):
    ensure_key_files(tmp_path, ["remediation"])
    k = keys(tmp_path)
    name, value = sign(k, "remediation", "remediation-commands", b'{"a":1}')
    assert name == SIGNATURE_HEADER
    issuer = verify(k, {name: value}, "remediation-commands", b'{"a":1}', ["remediation"])
    assert issuer == "remediation"


@pytest.mark.parametrize(
    "headers_value, topic, body, trusted, reason",
    [
        (None, "t", b"x", ["remediation"], "unsigned"),
        ("sig", "t", b"y", ["remediation"], "bad signature"),
        ("sig", "other", b"x", ["remediation"], "bad signature"),
        ("sig", "t", b"x", ["ingest"], "may not publish"),
        (b"garbage", "t", b"x", ["remediation"], "malformed"),
    ],
)
def test_unsigned_altered_replayed_or_untrusted_messages_are_refused(
    tmp_path, headers_value, topic, body, trusted, reason
):
    ensure_key_files(tmp_path, ["remediation", "ingest"])
    k = keys(tmp_path)
    _, signature = sign(k, "remediation", "t", b"x")
    headers = (
        {}
        if headers_value is None
        else {SIGNATURE_HEADER: signature if headers_value == "sig" else headers_value}
    )
    with pytest.raises(UntrustedMessage, match=reason):
        verify(k, headers, topic, body, trusted)


def test_secret_provider_key_wins_and_key_files_are_private(tmp_path):
    made = ensure_key_files(tmp_path, ["cli"])
    assert stat.S_IMODE(made[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert ensure_key_files(tmp_path, ["cli"]) == []  # kept on restart
    from_env = keys(tmp_path, {"FINFOCUS_SECRET_BUS_SIGNING_CLI": "k1"})
    from_file = keys(tmp_path)
    _, signature = sign(from_env, "cli", "t", b"x")
    with pytest.raises(UntrustedMessage):
        verify(from_file, {SIGNATURE_HEADER: signature}, "t", b"x", ["cli"])
    assert verify(from_env, {SIGNATURE_HEADER: signature}, "t", b"x", ["cli"]) == "cli"


def test_signing_without_a_key_says_where_to_put_one(tmp_path):
    with pytest.raises(RuntimeError, match="FINFOCUS_SECRET_BUS_SIGNING_INGEST"):
        sign(keys(tmp_path), "ingest", "t", b"x")
