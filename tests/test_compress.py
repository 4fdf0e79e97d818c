"""Compression stages: blocks cut by offset alone, and the threaded output stage's bound."""

from __future__ import annotations

import gzip
import io
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pyzstd
from hypothesis import given
from hypothesis import strategies as st
from isal import isal_zlib

from arcman._create.compress import (
    BlockCodec,
    BlockCompressor,
    GzipBlocks,
    ThreadedWriter,
    ZstdBlocks,
)
from arcman._stats import PhaseClock

MiB = 1024 * 1024


def _compress(
    codec: BlockCodec, data: bytes, cuts: list[int], threads: int, in_flight: int = 64 * MiB
) -> bytes:
    """Write ``data`` in pieces cut at ``cuts`` (as bytes and memoryviews) and close."""
    out = io.BytesIO()
    with ThreadPoolExecutor(threads) as pool:
        sink = BlockCompressor(
            out, codec, pool.submit, threads, PhaseClock(), in_flight, _combine(codec)
        )
        edges = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
        pieces = [data[a:b] for a, b in itertools.pairwise(edges)]
        for i in range(0, len(pieces), 3):
            sink.writelines(pieces[i : i + 3])
        sink.close()
    return out.getvalue()


def _combine(codec: BlockCodec) -> Callable[[int, int, int], int] | None:
    combine: Callable[[int, int, int], int] = isal_zlib.crc32_combine
    return combine if isinstance(codec, GzipBlocks) else None


@given(data=st.binary(max_size=6000), cuts=st.lists(st.integers(0, 6000), max_size=12))
def test_gzip_bytes_do_not_depend_on_how_the_stream_is_written(
    data: bytes, cuts: list[int]
) -> None:
    codec = GzipBlocks(6)
    codec.block_size = 700  # many blocks, pieces spanning several of them
    whole = _compress(codec, data, [], 1)
    assert _compress(codec, data, cuts, 2) == whole
    assert _compress(codec, data, cuts, 4, in_flight=1) == whole  # one block at a time
    assert gzip.decompress(whole) == data


@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_zstd_frames_concatenate_into_the_stream(data: bytes, cuts: list[int]) -> None:
    codec = ZstdBlocks(3)
    codec.block_size = 1000
    packed = _compress(codec, data, cuts, 2)
    assert pyzstd.decompress(packed) == data


def test_threaded_writer_holds_at_most_its_byte_budget() -> None:
    gate = threading.Event()
    written: list[int] = []

    def slow_write(data: bytes) -> None:
        gate.wait()
        written.append(len(data))

    stage = ThreadedWriter(slow_write, lambda: None, 8 * MiB)
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
