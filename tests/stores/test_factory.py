"""How a store URL names a SQLite file: read once (`sqlite_target`), for the memories and the graph alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from azmem.errors import ConfigurationError
from azmem.graph.store import open_graph_store
from azmem.graph.store.sqlite import SQLiteGraphStore
from azmem.stores.factory import backend_of, open_store, sqlite_target
from azmem.stores.sqlite import SQLiteStore


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("/data/m.db", (Path("/data/m.db"), False)),  # a bare path
        ("sqlite:////data/m.db", (Path("/data/m.db"), False)),
        ("sqlite:///rel/m.db", (Path("rel/m.db"), False)),
        ("sqlite:////data/m.db?mode=ro", (Path("/data/m.db"), True)),
        ("sqlite:////data/m.db?cache=shared&mode=ro", (Path("/data/m.db"), True)),
        ("sqlite:////data/m.db?mode=rw", (Path("/data/m.db"), False)),
        (":memory:", (":memory:", False)),
        ("sqlite:///:memory:", (":memory:", False)),
    ],
)
def test_a_sqlite_url_names_a_file_and_a_mode(url: str, target: tuple[object, bool]) -> None:
    assert backend_of(url) == "sqlite"
    assert sqlite_target(url) == target


def test_home_is_expanded() -> None:
    path, _ = sqlite_target("sqlite:///~/m.db")
    assert path == Path.home() / "m.db"


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        backend_of("mysql://db/m")
    assert caught.value.code == "unknown_store_scheme"


def test_memories_and_graph_open_the_same_file_read_only_from_one_url(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    open_store(f"sqlite:///{path}").close()
    open_graph_store(f"sqlite:///{path}").close()
    url = f"sqlite:///{path}?mode=ro"
    store, graph = open_store(url), open_graph_store(url)
    try:
        assert isinstance(store, SQLiteStore)
        assert isinstance(graph, SQLiteGraphStore)
        assert (store.read_only, graph.read_only) == (True, True)
        assert Path(store.path) == Path(graph.path) == path
    finally:
        store.close()
        graph.close()
