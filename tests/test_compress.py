"""Compression stages: the threaded output stage bounds what it holds in bytes."""

from __future__ import annotations

import threading

from arcman._create.compress import ThreadedWriter

MiB = 1024 * 1024


def test_threaded_writer_holds_at_most_its_byte_budget() -> None:
    gate = threading.Event()
    written: list[int] = []

    def slow_write(data: bytes) -> None:
        gate.wait()
        written.append(len(data))

    stage = ThreadedWriter(slow_write, lambda: None)
    accepted: list[int] = []

    def produce() -> None:
        for _ in range(4):
            stage.write(b"x" * 5 * MiB)
            accepted.append(1)

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(timeout=0.5)
    # 5 MiB is held by the gated writer; another 5 MiB would pass the 8 MiB budget.
    assert producer.is_alive()
    assert len(accepted) == 1
    gate.set()
    producer.join()
    stage.flush()
    assert written == [5 * MiB] * 4
