"""Compression stages: blocks cut by offset alone, and the threaded output stage (its bound, its
late start)."""

from __future__ import annotations

import gzip
import io
import itertools
import random
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcman._backends import crc32_combiner, isal_zlib, pyzstd
from arcman._create.compress import (
    PROBE_SAMPLE,
    PROBE_SPAN,
    START_AFTER,
    BlockCodec,
    BlockCompressor,
    DeflateBlocks,
    GzipBlocks,
    ThreadedWriter,
    ZstdBlocks,
    deflate_backend,
    flat_spans,
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
    return crc32_combiner() if isinstance(codec, GzipBlocks) else None


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


def _text(size: int, seed: int = 0) -> bytes:
    """Compressible, as source code is: repeated words, varying numbers."""
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"return", b"self", b"value", b"(", b")", b"\n"]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(words) for _ in range(12)) + b" %d\n" % rng.randrange(999)
    return bytes(out[:size])


def _noise(size: int, seed: int = 0) -> bytes:
    """Incompressible, as already compressed files are."""
    return random.Random(seed).randbytes(size)


def _raw_deflate(lib: Any, level: int, data: bytes, before: bytes, last: bool) -> bytes:
    c = lib.compressobj(level, lib.DEFLATED, -15, 8, lib.Z_DEFAULT_STRATEGY, before)
    out: bytes = c.compress(data) + c.flush(lib.Z_FINISH if last else lib.Z_SYNC_FLUSH)
    return out


def _isal() -> Any:
    module = isal_zlib()
    assert module is not None
    return module


@pytest.mark.needs_fast_libs  # the flat-span probe is ISA-L's only
def test_incompressible_spans_are_told_apart_from_text() -> None:
    tail = b"x" * (2 * PROBE_SAMPLE - 1)  # too short to be judged: counted as compressible
    block = _text(PROBE_SPAN) + _noise(2 * PROBE_SPAN) + _text(PROBE_SPAN, 1) + tail
    assert flat_spans(memoryview(block), _isal()) == [
        (0, PROBE_SPAN, False),
        (PROBE_SPAN, 3 * PROBE_SPAN, True),
        (3 * PROBE_SPAN, len(block), False),
    ]
    assert flat_spans(memoryview(b""), _isal()) == [(0, 0, False)]


@pytest.mark.needs_fast_libs
def test_incompressible_runs_are_stored_and_text_deflated_at_the_level() -> None:
    history = _text(32 * 1024, 2)
    text, noise, more = _text(PROBE_SPAN), _noise(PROBE_SPAN), _text(PROBE_SPAN, 3)
    block = text + noise + more
    packed, crc = DeflateBlocks(6).compress(block, history, last=False)
    lib, native = deflate_backend(6)
    window = 32 * 1024  # each deflated run is primed with what precedes it in the stream
    assert packed == (
        _raw_deflate(lib, native, text, history, False)
        + _raw_deflate(lib, 0, noise, b"", False)  # stored blocks
        + _raw_deflate(lib, native, more, noise[-window:], False)
    )
    assert crc == zlib.crc32(block)
    assert zlib.decompressobj(-15, zdict=history).decompress(packed) == block


@pytest.mark.needs_fast_libs
def test_a_run_that_compresses_after_all_is_deflated_at_the_level() -> None:
    # Text with noise where the probe looks: judged flat, but ISA-L 1 shrinks it by far more
    # than 1 %, so it is deflated at the level, not stored.
    middle = (PROBE_SPAN - PROBE_SAMPLE) // 2
    span = _text(middle) + _noise(PROBE_SAMPLE) + _text(PROBE_SPAN - middle - PROBE_SAMPLE, 1)
    assert flat_spans(memoryview(span), _isal()) == [(0, PROBE_SPAN, True)]
    lib, native = deflate_backend(6)
    assert DeflateBlocks(6).compress(span, b"", last=True)[0] == _raw_deflate(
        lib, native, span, b"", True
    )


@settings(max_examples=30, deadline=None)
@given(
    parts=st.lists(st.tuples(st.booleans(), st.integers(1, 3 * PROBE_SPAN)), max_size=6),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_gzip_of_text_and_incompressible_stretches_round_trips(
    parts: list[tuple[bool, int]], cuts: list[int]
) -> None:
    data = b"".join(
        (_noise if noisy else _text)(size, seed) for seed, (noisy, size) in enumerate(parts)
    )
    codec = GzipBlocks(6)
    codec.block_size = 4 * PROBE_SPAN
    whole = _compress(codec, data, [], 1)
    assert _compress(codec, data, cuts, 3) == whole
    assert gzip.decompress(whole) == data


@pytest.mark.needs_zstd
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_zstd_frames_concatenate_into_the_stream(data: bytes, cuts: list[int]) -> None:
    codec = ZstdBlocks(3)
    codec.block_size = 1000
    packed = _compress(codec, data, cuts, 2)
    assert pyzstd().decompress(packed) == data


@pytest.mark.needs_zstd
def test_zstd_frames_from_kept_contexts_are_those_of_fresh_ones() -> None:
    """Each worker keeps its compression context from frame to frame: every frame must still
    be what a fresh context makes of its block alone (content size and checksum in it), on
    whichever thread, after whatever block came before."""
    zstd = pyzstd()
    blocks = [_text(70_000, 1), _noise(5_000, 2), b"", _text(3_000, 3) * 20, _text(70_000, 1)]
    options: dict[int, int] = {
        zstd.CParameter.compressionLevel: 3, zstd.CParameter.checksumFlag: 1
    }
    fresh = [zstd.compress(b, options) for b in blocks]
    codec = ZstdBlocks(3)
    with ThreadPoolExecutor(2) as pool:
        kept = list(pool.map(lambda b: codec.compress(b, b"", False)[0], blocks * 3))
    assert kept == fresh * 3
    for frame, block in zip(fresh, blocks, strict=True):
        assert zstd.get_frame_info(frame).decompressed_size == len(block)
    assert zstd.decompress(b"".join(kept)) == b"".join(blocks * 3)


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


def test_threaded_writer_keeps_the_order_across_its_start() -> None:
    """Bytes written before the thread starts go out first, in order, and once each."""
    written: list[bytes] = []
    finished: list[bool] = []
    stage = ThreadedWriter(written.append, lambda: finished.append(True), 8 * MiB)
    small = [bytes([i]) * 1000 for i in range(5)]
    for piece in small:
        stage.write(piece)
    assert written == []  # held by the caller: no thread yet
    big = b"x" * START_AFTER
    stage.write(big)
    stage.write(b"tail")
    stage.flush()
    assert written == [*small, big, b"tail"]
    assert finished == [True]


def test_threaded_writer_below_its_start_is_written_by_flush_alone() -> None:
    written: list[bytes] = []
    stage = ThreadedWriter(written.append, lambda: None, 8 * MiB)
    stage.write(b"a")
    stage.write(b"b")
    stage.flush()
    assert written == [b"a", b"b"]
    dropped = ThreadedWriter(written.append, lambda: None, 8 * MiB)
    dropped.write(b"never")
    dropped.stop()  # an abandoned stream (the archive is being removed): nothing more written
    assert written == [b"a", b"b"]


@pytest.mark.parametrize("may_stall", [True, False])
def test_an_abandoned_writer_drops_what_is_queued_and_leaves_a_stalled_write(
    may_stall: bool,
) -> None:
    """After a failure or Ctrl-C, stop(abandon=True) joined the thread, which waited on a
    write to a pipe that nobody read (`arcman create -o - | ssh ...` on a stalled network)."""
    began = threading.Event()
    gate = threading.Event()
    written: list[int] = []

    def stalled_write(data: bytes) -> None:
        began.set()
        gate.wait(30)
        written.append(len(data))

    stage = ThreadedWriter(stalled_write, lambda: None, 64 * MiB, may_stall=may_stall)
    for _ in range(3):
        stage.write(b"x" * START_AFTER)
    assert began.wait(30)
    stopper = threading.Thread(target=stage.stop, kwargs={"abandon": True})
    started = time.monotonic()
    stopper.start()
    stopper.join(1)
    # A regular file's write returns: it is waited for; a stream's is left after the grace.
    assert stopper.is_alive() is not may_stall
    if may_stall:
        assert time.monotonic() - started < 2
    gate.set()
    stopper.join(30)
    deadline = time.monotonic() + 30
    while not written and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert written == [START_AFTER]  # the write under way ends; what was queued is dropped


def test_a_stream_of_one_block_is_compressed_by_the_caller() -> None:
    """Nothing would overlap with a pool job for the only block; a longer stream uses the pool."""
    calls: list[int] = []
    with ThreadPoolExecutor(2) as pool:

        def submit(fn: Callable[..., Any], *args: Any) -> Any:
            calls.append(1)
            return pool.submit(fn, *args)

        for size, jobs in ((0, 0), (999, 0), (2500, 3)):
            calls.clear()
            codec = GzipBlocks(6)
            codec.block_size = 1000
            out = io.BytesIO()
            sink = BlockCompressor(out, codec, submit, 2, PhaseClock(), 64 * MiB, _combine(codec))
            data = _text(size)
            sink.writelines([data])
            sink.close()
            assert gzip.decompress(out.getvalue()) == data
            assert out.getvalue() == _compress(codec, data, [], 1)
            assert len(calls) == jobs, size
