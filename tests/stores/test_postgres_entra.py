"""Microsoft Entra ID sign-in to PostgreSQL: an access token as the password, refreshed on expiry.

The local server stands in for Azure Database for PostgreSQL: a role whose password is
the token the test credential issued, re-set to the new token whenever the credential
issues one (Azure validates the token itself; here ALTER ROLE plays that part).
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from azure.core.credentials import AccessToken

from azmem.azure.auth import POSTGRES_TOKEN_SCOPE, postgres_token_provider, wants_entra_for_postgres
from azmem.azure.settings import AzmemSettings
from azmem.errors import StoreAuthError
from azmem.stores import Scope, open_store

from .store_helpers import DIM, EMBEDDER, add


class RotatingCredential:
    """A TokenCredential whose every token lives `ttl` seconds; the role's password follows it."""

    def __init__(self, admin_url: str, role: str, ttl: float) -> None:
        self.admin_url, self.role, self.ttl = admin_url, role, ttl
        self.scopes: list[tuple[str, ...]] = []
        self.issued: list[str] = []

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.scopes.append(scopes)
        token = f"eyJ{uuid.uuid4().hex}.{len(self.issued)}"
        self.issued.append(token)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE \"{self.role}\" PASSWORD '{token}'")
        return AccessToken(token, int(time.time() + self.ttl))


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))


@pytest.fixture
def entra_role(pg_url: str) -> str:
    role = f"app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'unset-{uuid.uuid4().hex}'")
        dbname = urlsplit(pg_url).path.lstrip("/")
        conn.execute(f'GRANT ALL ON DATABASE "{dbname}" TO "{role}"')
        conn.execute(f'GRANT ALL ON SCHEMA public TO "{role}"')
    return role


def test_auto_means_entra_for_azure_hosts_without_a_password() -> None:
    assert wants_entra_for_postgres("postgresql://app@srv.postgres.database.azure.com/db", "auto")
    assert not wants_entra_for_postgres("postgresql://app:pw@srv.postgres.database.azure.com/db", "auto")
    assert not wants_entra_for_postgres("postgresql://app@localhost/db", "auto")
    assert wants_entra_for_postgres("postgresql://app@localhost/db", "entra")
    assert not wants_entra_for_postgres("postgresql://app@srv.postgres.database.azure.com/db", "password")


def test_tokens_sign_in_and_are_refreshed_for_new_connections(pg_url: str, entra_role: str) -> None:
    cred = RotatingCredential(pg_url, entra_role, ttl=1)  # inside the refresh window: a new token each time
    settings = AzmemSettings.load({"chat": {"endpoint": "https://x.openai.azure.com", "deployment": "d"}})
    settings.chat.credential = cred  # type: ignore[union-attr]
    provider = postgres_token_provider(settings)
    url = _as_role(pg_url, entra_role)
    store = open_store(url, password=provider, pool_size=1)
    store.open(EMBEDDER, DIM)
    add(store, "signed in with a token", user_id="u")
    assert cred.scopes[0] == (POSTGRES_TOKEN_SCOPE,)
    first = len(cred.issued)
    # The token expires and the server forgets it (ALTER ROLE to the next one happens when it is
    # issued): connections opened from now on must use a fresh token from the credential.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (entra_role,)
        )
    time.sleep(1.1)
    hits = store.search("token", None, Scope(user_id="u"), mode="bm25")
    assert [h.record.memory for h in hits] == ["signed in with a token"]
    assert len(cred.issued) > first
    store.close()


def test_a_refused_token_is_an_auth_error(pg_url: str, entra_role: str) -> None:
    url = _as_role(pg_url, entra_role)
    with pytest.raises(StoreAuthError) as err:
        open_store(url, password=lambda: "eyJnot.a.valid-token", pool_size=1).count()
    assert "eyJnot" not in str(err.value)
