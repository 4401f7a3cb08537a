"""FinFocus shared runtime: settings, broker, database, telemetry, secrets, embedded stack, CLI."""

__version__ = "0.1.0"
