"""FileBatches: many small members per pool job, each with its own result or error; tiny ones
handled by the caller."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from arcman._extract.batch import BATCH_FILES, FileBatches
from arcman._extract.members import Data
from arcman._workers import TINY_FILE_AVERAGE, ByteBudget


def _work(path: str, data: Data, mode: int, mtime: int) -> str:
    if path == "bad":
        raise OSError("refused")
    return f"{path}:{bytes(data).decode()}"


def test_each_member_gets_its_own_result_or_error() -> None:
    budget = ByteBudget(1 << 20)
    with ThreadPoolExecutor(2) as pool:
        batches = FileBatches(pool.submit, budget, _work)
        futures = {p: batches.add(p, b"x", 0o644, 0) for p in ("a", "bad", "c")}
        assert not any(f.done() for f in futures.values())  # waiting for the batch to fill
        batches.flush()
        assert futures["a"].result() == "a:x"
        assert futures["c"].result() == "c:x"
        assert isinstance(futures["bad"].exception(), OSError)
    budget.drain()  # every charged byte was given back


def test_a_full_batch_is_handed_over_without_a_flush() -> None:
    batches = FileBatches(None, ByteBudget(1 << 20), _work)
    futures = [batches.add(f"f{i}", b"y", 0o644, 0) for i in range(BATCH_FILES + 1)]
    assert all(f.done() for f in futures[:BATCH_FILES])
    assert not futures[-1].done()


def test_discarded_members_hold_no_budget() -> None:
    budget = ByteBudget(1 << 20)
    batches = FileBatches(None, budget, _work)
    batches.add("a", b"z" * 1000, 0o644, 0)
    batches.discard()
    budget.drain()  # returns at once: nothing was charged
    batches.flush()


def test_tiny_files_are_handled_by_the_caller_larger_ones_by_a_worker() -> None:
    threads: dict[str, int] = {}

    def record(path: str, data: Data, mode: int, mtime: int) -> str:
        threads[path] = threading.get_ident()
        return path

    with ThreadPoolExecutor(1) as pool:
        batches = FileBatches(pool.submit, ByteBudget(1 << 24), record)
        tiny = batches.add("tiny", b"t" * 100, 0o644, 0)
        batches.flush()
        assert tiny.done(), "a tiny batch is not handed to the pool"
        big = batches.add("big", b"b" * (TINY_FILE_AVERAGE + 1), 0o644, 0)
        batches.flush()
        assert big.result() == "big"
    assert threads["tiny"] == threading.get_ident()
    assert threads["big"] != threading.get_ident()
