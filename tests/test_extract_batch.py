"""FileBatches: many small members per pool job, each with its own digest; a failure ends its
batch; tiny batches are handled by the caller."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from arcman._extract.batch import BATCH_FILES, FileBatches
from arcman._extract.members import Data
from arcman._stats import PhaseClock
from arcman._workers import TINY_FILE_AVERAGE, ByteBudget


def _work(path: str, data: Data, mode: int, mtime: int) -> bytes:
    if path.startswith("bad"):
        raise OSError(f"refused {path}")
    return f"{path}:{bytes(data).decode()}".encode()


def test_each_member_gets_its_own_digest() -> None:
    budget = ByteBudget(1 << 20)
    with ThreadPoolExecutor(2) as pool:
        batches = FileBatches(pool.submit, budget, _work, PhaseClock(), "work")
        digests = {p: batches.add(p, b"x" * 5000, 0o644, 0) for p in ("a", "b", "c")}
        assert not any(d.ready() for d in digests.values())  # waiting for the batch to fill
        batches.flush()
        expected = [p.encode() + b":" + b"x" * 5000 for p in "abc"]
        assert [digests[p].value() for p in "abc"] == expected
        assert all(d.ready() for d in digests.values())
    budget.drain()  # every charged byte was given back


def test_a_failure_is_the_members_and_ends_its_batch() -> None:
    budget = ByteBudget(1 << 20)
    with ThreadPoolExecutor(2) as pool:
        batches = FileBatches(pool.submit, budget, _work, PhaseClock(), "work")
        first, bad, after = (batches.add(p, b"x" * 5000, 0o644, 0) for p in ("a", "bad1", "c"))
        batches.flush()
        assert first.value() == b"a:" + b"x" * 5000
        with pytest.raises(OSError, match="refused bad1"):
            bad.value()
        assert not bad.ready()
        with pytest.raises(OSError, match="refused bad1"):
            after.value()
        later = batches.add("d", b"y" * 5000, 0o644, 0)  # the next batch is not affected
        batches.flush()
        assert later.value() == b"d:" + b"y" * 5000
    budget.drain()


def test_a_digest_awaited_before_its_batch_is_flushed_is_a_bug_not_a_hang() -> None:
    batches = FileBatches(None, ByteBudget(1 << 20), _work, PhaseClock(), "work")
    digest = batches.add("a", b"x", 0o644, 0)
    with pytest.raises(RuntimeError, match="before its batch was flushed"):
        digest.value()


def test_a_full_batch_is_handed_over_without_a_flush() -> None:
    batches = FileBatches(None, ByteBudget(1 << 20), _work, PhaseClock(), "work")
    digests = [batches.add(f"f{i}", b"y", 0o644, 0) for i in range(BATCH_FILES + 1)]
    assert all(d.ready() for d in digests[:BATCH_FILES])
    assert not digests[-1].ready()


def test_discarded_members_hold_no_budget() -> None:
    budget = ByteBudget(1 << 20)
    batches = FileBatches(None, budget, _work, PhaseClock(), "work")
    batches.add("a", b"z" * 1000, 0o644, 0)
    batches.discard()
    budget.drain()  # returns at once: nothing was charged
    batches.flush()


def test_tiny_files_are_handled_by_the_caller_larger_ones_by_a_worker() -> None:
    threads: dict[str, int] = {}

    def record(path: str, data: Data, mode: int, mtime: int) -> bytes:
        threads[path] = threading.get_ident()
        return path.encode()

    with ThreadPoolExecutor(1) as pool:
        batches = FileBatches(pool.submit, ByteBudget(1 << 24), record, PhaseClock(), "work")
        tiny = batches.add("tiny", b"t" * 100, 0o644, 0)
        batches.flush()
        assert tiny.ready(), "a tiny batch is not handed to the pool"
        big = batches.add("big", b"b" * (TINY_FILE_AVERAGE + 1), 0o644, 0)
        batches.flush()
        assert big.value() == b"big"
    assert threads["tiny"] == threading.get_ident()
    assert threads["big"] != threading.get_ident()
