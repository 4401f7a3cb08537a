"""What every command group that publishes a command needs: the command line's signature."""

from __future__ import annotations

from finfocus.cli.output import fail


def sign_as_cli(settings, topic: str, value: bytes) -> tuple[str, bytes]:
    """The command line's signature of a command it publishes (key: the secrets provider's
    `bus-signing/cli`, else the 0600 key file under FINFOCUS_HOME/secrets)."""
    from finfocus.signing import service_keys, sign

    try:
        return sign(service_keys(settings.home, ["cli"]), "cli", topic, value)
    except (OSError, RuntimeError) as exc:  # e.g. another user's FINFOCUS_HOME/secrets (0700)
        fail(f"cannot sign the command as the command line: {exc}")
