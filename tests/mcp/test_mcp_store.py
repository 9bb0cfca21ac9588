"""The mutation agent's own library reopens the server's store where it really is: a
PostgreSQL store from its full URL (with the password), not from `Library.path`, which is the
URL with the password masked for messages."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from symbiont.library import Library
from symbiont.mcp.server import CapabilityServer, ServerOptions


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def test_the_author_library_reopens_a_postgres_store_with_its_password(pg_url: str) -> None:
    # The test server trusts local connections, so a password is accepted and ignored; what
    # is checked is that the reopened library connects with the URL it was given.
    url = _with_password(pg_url, "s3cret-word")
    with Library(url, tier="process") as lib:
        assert "s3cret-word" not in str(lib.path)  # the masked form, for messages
        server = CapabilityServer(ServerOptions(poll_s=0), library=lib)
        try:
            with server._author_library() as own:
                assert own.store is not lib.store  # a connection of its own
                assert own.store.url == url
                assert own.list() == lib.list()  # the same database
                assert (own.tier, own.data_root) == (lib.tier, lib.data_root)
        finally:
            server.close()


def test_the_author_library_reopens_a_sqlite_store_at_its_file(tmp_path: Path) -> None:
    with Library(tmp_path / "store.db", tier="process", data_root=tmp_path / "data") as lib:
        server = CapabilityServer(ServerOptions(poll_s=0), library=lib)
        try:
            with server._author_library() as own:
                assert own.store is not lib.store
                assert Path(own.store.path) == (tmp_path / "store.db").absolute()
                assert own.data_root == tmp_path / "data"
        finally:
            server.close()
