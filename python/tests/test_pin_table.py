"""The pool's pin table (maru_pin_table_*) on a real mount: a full table, a dead process's
entries, keys whose hashes share a slot, and one lock per batch shared by processes."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from test_compat import peer, put  # noqa: F401 (peer: the fixture, used by name)

from maru import MaruHandler, _pins


@pytest.fixture
def small_table(world, config_for, tmp_path, monkeypatch):
    """A handler whose pool's pin table has ``slots`` entries (a fresh pin directory)."""
    handlers: list[MaruHandler] = []

    def make(slots: int) -> MaruHandler:
        pins = tmp_path / "pins"
        pins.mkdir(mode=0o1777, exist_ok=True)
        monkeypatch.setenv("MARU_PIN_DIR", str(pins))
        monkeypatch.setenv("MARU_PIN_SLOTS", str(slots))
        monkeypatch.setattr(_pins, "_HOLDS", {})  # this process opens the new table
        h = MaruHandler(config_for())
        assert h.connect(), h.last_error
        assert h._h().table.slots == slots
        handlers.append(h)
        return h

    yield make
    for h in handlers:
        h.close()


def home(key: str, slots: int) -> int:
    """The key's home slot in a table of ``slots`` entries (libmaru: SHA-256, low word)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & (slots - 1)


def test_a_full_table_refuses_new_pins_and_keeps_counting_old_ones(small_table, key):
    h = small_table(4)
    keys = [key(i) for i in range(6)]
    for k in keys:
        assert put(h, k, k.encode())
    assert h.batch_pin(keys) == [True] * 4 + [False] * 2
    assert h.get_stats()["stats_manager"]["pin_table_full"] == 1
    assert [h.pin_count(k) for k in keys] == [1, 1, 1, 1, 0, 0]
    assert h.pin(keys[4]) is False and h.pin_count(keys[4]) == 0
    assert h.pin(keys[0]) is True and h.pin_count(keys[0]) == 2  # its entry exists
    assert h.delete(keys[4]) is True  # never pinned
    # A key with no pin left frees its entry for another.
    assert h.batch_unpin([keys[1]]) == [True]
    assert h.pin(keys[5]) is True
    assert h.batch_unpin(keys) == [True, False, True, True, False, True]
    assert h.unpin(keys[0]) is True
    assert [h.pin_count(k) for k in keys] == [0] * 6
    assert len(h._h().views) == 0


def test_a_dead_process_entries_are_ignored_and_make_room(small_table, key, peer):
    h = small_table(4)
    keys = [key(i) for i in range(4)]
    for k in keys:
        assert put(h, k, k.encode())
    other = peer()
    assert other.call(f"h.batch_pin({keys[:3]!r})") == [True] * 3
    assert other.call(f"h.pin({keys[0]!r})") is True
    assert [h.pin_count(k) for k in keys] == [2, 1, 1, 0]
    assert h.pin(keys[3]) is True  # the fourth entry: the table is now full
    assert h.delete(keys[0]) is False
    other.kill()
    assert [h.pin_count(k) for k in keys] == [0, 0, 0, 1]
    assert h.delete(keys[0]) is True
    # The dead process's entries are pruned: three free entries again.
    more = [key(10 + i) for i in range(3)]
    for k in more:
        assert put(h, k, k.encode())
    assert h.batch_pin(more) == [True] * 3
    assert h.batch_unpin(more + keys[3:]) == [True] * 4
    assert h.get_stats()["allocation_manager"]["active_clients"] == 1


def test_keys_sharing_a_slot_keep_their_own_counts(small_table, key, peer):
    slots = 16
    h = small_table(slots)
    # Six keys with the same home slot, and two on the next one: one probe cluster.
    same, nxt = [], []
    i = 0
    target = home(key(0), slots)
    while len(same) < 6 or len(nxt) < 2:
        k = key(i)
        if home(k, slots) == target and len(same) < 6:
            same.append(k)
        elif home(k, slots) == (target + 1) % slots and len(nxt) < 2:
            nxt.append(k)
        i += 1
    keys = same + nxt
    for k in keys:
        assert put(h, k, k.encode())
    other = peer()
    for n, k in enumerate(keys):
        assert h.batch_pin([k] * (n + 1)) == [True] * (n + 1)
        assert other.call(f"h.pin({k!r})") is True
    want = [n + 2 for n in range(len(keys))]
    assert [h.pin_count(k) for k in keys] == want
    # Drop every pin of some keys in the middle of the cluster: the others move up
    # but keep their counts, in both processes.
    for n in (0, 2, 6):
        k = keys[n]
        assert h.batch_unpin([k] * want[n]) == [True] * want[n]
        want[n] = 0
    assert [h.pin_count(k) for k in keys] == want
    assert other.call(f"[h.pin_count(k) for k in {keys!r}]") == want
    for n, k in enumerate(keys):
        assert other.call(f"h.batch_unpin([{k!r}] * {want[n]})") == [True] * want[n]
    assert [h.pin_count(k) for k in keys] == [0] * len(keys)
    assert all(h.delete(k) for k in keys)


def test_table_is_created_usable_by_the_pools_users(small_table):
    h = small_table(8)
    table = h._h().table
    mode = stat.S_IMODE(os.stat(table.path).st_mode)
    assert mode & 0o666 == 0o666  # pool `kv` is mode 1777: every user pins
