"""`charq keys create|list|revoke`: manage API keys straight in the database (no API call needed).

    charq keys create ci-bot --tenant acme     # prints the secret once; only its sha256 is stored
    charq keys list
    charq keys revoke cq_1a2b                  # by id or by the prefix `list` shows
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import click
from sqlalchemy.orm import Session

from worker.cli.service import load_settings, safe_url


@contextlib.contextmanager
def database_session() -> Iterator[Session]:
    """A session on the configured database, with the usual failures turned into one line."""
    from sqlalchemy import exc as sa_exc

    from api.errors import ApiError
    from models import make_engine, make_sessions

    settings = load_settings()
    if settings.embedded and not (settings.data_dir / "charq.db").exists() \
            and not settings.database_url:
        # Opening a missing SQLite file would silently create an empty one.
        raise click.ClickException(f"no database at {settings.data_dir / 'charq.db'}: "
                                   "run `charq migrate` (or `charq up`) first")
    engine = make_engine(settings.database)
    try:
        with make_sessions(engine)() as session:
            yield session
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    except sa_exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0]
        hint = " (run `charq migrate`)" if "no such table" in reason or "does not exist" in reason else ""
        raise click.ClickException(f"{safe_url(settings.database)}: {reason}{hint}") from None
    except sa_exc.ProgrammingError as exc:  # PostgreSQL: relation does not exist
        reason = str(exc.orig).strip().splitlines()[0]
        raise click.ClickException(f"{reason} (run `charq migrate`)") from None
    finally:
        engine.dispose()


def key_json(key) -> dict:
    return {
        "id": key.id, "prefix": key.prefix, "name": key.name, "tenant": key.tenant.name,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (`Authorization: Bearer <key>` on every /v1 request)."""


@keys.command("create")
@click.argument("name")
@click.option("--tenant", default=None, help="Tenant that owns the key (created if new); "
              "default: the default tenant.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (secret included).")
def create_key(name: str, tenant: str | None, as_json: bool) -> None:
    """Create a key NAME and print its secret. It is shown only this once."""
    from api.services import create_api_key, ensure_default_tenant

    with database_session() as session:
        tenant_name = tenant or ensure_default_tenant(session).name
        key, secret = create_api_key(session, tenant_name, name)
        info = key_json(key)
    if as_json:
        click.echo(json.dumps({**info, "secret": secret}))
        return
    click.echo(f"created key {info['id']} ({info['prefix']}) for tenant {info['tenant']!r}.")
    click.echo("The secret is shown only this once (only its hash is stored):")
    click.secho(f"    {secret}", bold=True)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_keys(as_json: bool) -> None:
    """List keys: id, prefix, name, tenant, created, revoked. Secrets are never shown."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from models import ApiKey

    with database_session() as session:
        rows = [key_json(k) for k in session.scalars(
            select(ApiKey).options(selectinload(ApiKey.tenant)).order_by(ApiKey.id))]
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(f"{'ID':>4}  {'PREFIX':<16} {'TENANT':<16} {'NAME':<24} {'CREATED':<20} REVOKED")
    for r in rows:
        click.echo(f"{r['id']:>4}  {r['prefix']:<16} {r['tenant']:<16} {r['name']:<24} "
                   f"{r['created_at'][:19]:<20} {(r['revoked_at'] or '-')[:19]}")


@keys.command("revoke")
@click.argument("id_or_prefix")
def revoke_key(id_or_prefix: str) -> None:
    """Revoke a key by id or prefix; requests with it get 401 from then on."""
    from api.services import revoke_api_key

    with database_session() as session:
        key = revoke_api_key(session, id_or_prefix)
        label = f"{key.id} ({key.prefix})" if key is not None else id_or_prefix
    click.echo(f"revoked key {label}")
