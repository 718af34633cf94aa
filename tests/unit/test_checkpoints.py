"""One checkpoints interface for every source: positions per (stack, source, key), saved
together or not at all."""

from __future__ import annotations

import sqlite3

import pytest

from agent.state import State, StateUnwritable


def test_positions_are_per_stack_source_and_key(tmp_path):
    store = State(tmp_path / "s.db")
    default, eu = store.checkpoints(), store.checkpoints("eu-1")
    assert default.get("container", "hummingbot-api") is None
    wide = {"container_id": "c1", "stdout": 1_765_000_000_000_000_000 << 10 | 5, "stderr": 1 << 70}
    default.put("container", "hummingbot-api", wide)
    eu.put("container", "hummingbot-api", {"container_id": "c2", "stdout": 1, "stderr": 2})
    default.put("deploys", "", {"seq": 3})
    assert default.get("container", "hummingbot-api") == wide  # wider than SQLite's integers: kept whole
    assert eu.get("container", "hummingbot-api")["container_id"] == "c2"
    assert default.get("file", "hummingbot-api") is None
    default.put("deploys", "", {"seq": 4})
    assert default.get("deploys", "") == {"seq": 4} and eu.get("deploys", "") is None


def test_put_many_saves_all_or_nothing(tmp_path):
    store = State(tmp_path / "s.db")
    cps = store.checkpoints()
    cps.put_many([("container", "a", {"n": 1}), ("file", "/x", {"offset": 2})])
    assert cps.get("container", "a") == {"n": 1} and cps.get("file", "/x") == {"offset": 2}
    cps.put_many([])
    store.file.conn().execute("CREATE TRIGGER refuse BEFORE INSERT ON checkpoints WHEN NEW.key = 'bad'"
                              " BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(StateUnwritable):  # the second cannot be written: the first is not either
        cps.put_many([("container", "a", {"n": 5}), ("file", "bad", {"offset": 3})])
    assert cps.get("container", "a") == {"n": 1}
    with pytest.raises(sqlite3.Error):
        store.file.conn().execute("SELECT stdout_ts FROM checkpoints")  # the old shape is gone
