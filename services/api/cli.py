"""`finfocus user add|list|remove` and `finfocus token create|list|revoke`: the api's own
command group, loaded by the root CLI by name.

They write schema `api` only, as the api's own role on the embedded stack (its 0600 password
file under FINFOCUS_HOME/secrets/postgres), or through FINFOCUS_DATABASE_URL elsewhere.
Passwords are read from stdin or a hidden prompt, never from an argument (argv is visible
to every user of the machine); a token is printed once and only its sha256 is kept.
"""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime, timedelta

import typer

from finfocus.cli.output import OUTPUT_OPTION, OutputFormat, fail, print_json, print_table, run

user_app = typer.Typer(
    help="Console logins (local users with argon2 password hashes).", no_args_is_help=True
)
token_app = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)

ROLE_HELP = "viewer (read), approver (+ decisions) or admin (+ budgets, users, tokens)"


def _database_url() -> str:
    from finfocus.settings import FinFocusSettings

    settings = FinFocusSettings()
    if settings.database_url:
        return settings.database_url
    state = settings.embedded_state()
    port = (state.get("postgres") or {}).get("port")
    if port is None:
        return settings.database  # raises with the `finfocus up` hint
    from finfocus.embedded.postgres import DATABASE, read_secret
    from finfocus.embedded.roles import password_file, service_role

    role = service_role("api")
    password = read_secret(password_file(settings.home.expanduser().resolve(), role))
    if password is None:
        return settings.database
    return f"postgresql://{role}:{password}@127.0.0.1:{port}/{DATABASE}"


async def _with_store(work):
    from finfocus.db import connect, migrate
    from services.api import store

    conn = await connect(_database_url())
    try:
        await migrate(conn, "api", store.MIGRATIONS_DIR)
        return await work(conn)
    finally:
        await conn.close()


def _role(role: str) -> str:
    from services.api.security import check_role

    try:
        return check_role(role)
    except ValueError as exc:
        fail(str(exc), 2)


@user_app.command("add")
def add_user(
    name: str = typer.Argument(..., help="Login name"),
    role: str = typer.Option(..., "--role", "-r", help=ROLE_HELP),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin"
    ),
) -> None:
    """Create a login (or replace its role and password)."""
    import re

    from services.api import store
    from services.api.security import hash_password

    _role(role)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}", name):
        fail("a user name is 1-64 letters, digits, _ . @ - (starting with a letter or digit)", 2)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            fail("the passwords differ")
    if len(password) < 8:
        fail("the password needs at least 8 characters", 2)
    hashed = hash_password(password)

    async def work(conn):
        return await store.add_user(conn, name, role, hashed)

    new = run(_with_store(work))
    typer.echo(f"user {name} {'added' if new else 'updated'} ({role})")


@user_app.command("list")
def list_users(output: OutputFormat = OUTPUT_OPTION) -> None:
    """Logins and their roles."""
    from services.api import store

    users = run(_with_store(store.list_users))
    if output is OutputFormat.TABLE:
        print_table(
            ["name", "role", "created"], [[u["name"], u["role"], u["created_at"]] for u in users]
        )
    else:
        print_json({"users": users})


@user_app.command("remove")
def remove_user(name: str = typer.Argument(..., help="Login name")) -> None:
    """Remove a login and end its sessions."""
    from services.api import store

    async def work(conn):
        return await store.remove_user(conn, name)

    if not run(_with_store(work)):
        fail(f"no user {name}")
    typer.echo(f"user {name} removed")


@token_app.command("create")
def create_token(
    role: str = typer.Option(..., "--role", "-r", help=ROLE_HELP),
    name: str = typer.Option(None, "--name", help="Who or what holds it"),
    user: str = typer.Option(
        None,
        "--user",
        "-u",
        help="The user it belongs to: its decisions are audited as user:<name>, it never "
        "does more than that user may, and it dies with the user (without: a service "
        "token, audited as token:<id>)",
    ),
    expires_days: float = typer.Option(
        None, "--expires-days", min=0.001, help="Expires after so many days"
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create an API token and print it once (`Authorization: Bearer <token>`)."""
    from services.api import store
    from services.api.security import allows, new_token, token_hash

    _role(role)
    token_id, token = new_token()
    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None

    async def work(conn) -> str | None:
        if user is not None:
            have = await store.user_role(conn, user)
            if have is None:
                return f"no user {user} (or disabled): `finfocus user add` first"
            if not allows(have, role):
                return f"user {user} is {have}: a token of theirs cannot be {role}"
        await store.create_token(
            conn, token_id, token_hash(token), role, name, expires, user_name=user
        )
        return None

    refused = run(_with_store(work))
    if refused:
        fail(refused, 2)
    if output is OutputFormat.TABLE:
        typer.echo(token)
        owner = f", user {user}" if user else ""
        typer.echo(f"token {token_id} ({role}{owner}): shown once, keep it secret", err=True)
    else:
        print_json(
            {
                "token": token,
                "id": token_id,
                "role": role,
                "user": user,
                "expires_at": expires.isoformat() if expires else None,
            }
        )


@token_app.command("list")
def list_tokens(output: OutputFormat = OUTPUT_OPTION) -> None:
    """Tokens (ids, roles, use), never their secrets."""
    from services.api import store

    tokens = run(_with_store(store.list_tokens))
    if output is OutputFormat.TABLE:
        print_table(
            ["id", "role", "user", "name", "created", "last used", "revoked"],
            [
                [
                    t["token_id"],
                    t["role"],
                    t["user_name"] or "",
                    t["name"] or "",
                    t["created_at"],
                    t["last_used_at"] or "",
                    t["revoked_at"] or "",
                ]
                for t in tokens
            ],
        )
    else:
        print_json({"tokens": tokens})


@token_app.command("revoke")
def revoke_token(token: str = typer.Argument(..., help="Token id (or the token itself)")) -> None:
    """Revoke a token at once."""
    from services.api import store
    from services.api.security import TOKEN_PREFIX

    token_id = (
        token.removeprefix(TOKEN_PREFIX).split("_", 1)[0]
        if token.startswith(TOKEN_PREFIX)
        else token
    )

    async def work(conn):
        return await store.revoke_token(conn, token_id)

    if not run(_with_store(work)):
        fail(f"no live token {token_id}")
    typer.echo(f"token {token_id} revoked")


def register(app: typer.Typer) -> None:
    """Add `finfocus user` and `finfocus token` to the `finfocus` app."""
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
    from services.api.assistant_cli import register as register_assistant

    register_assistant(app)  # `finfocus ask` and `finfocus mcp`
