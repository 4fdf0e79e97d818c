"""NameSet: the guard's compact set of names answers like a real set."""

from __future__ import annotations

from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from arcman._extract import nameset
from arcman._extract.nameset import NameSet

names = st.lists(st.text(max_size=12), max_size=300)


@given(names, names, st.sampled_from([nameset.SMALL_LIMIT, 0, 5, 64]))
def test_answers_like_a_set(added: list[str], probed: list[str], small_limit: int) -> None:
    """With the default limit only the small set is used; with low ones, the table too."""
    with mock.patch.object(nameset, "SMALL_LIMIT", small_limit):
        compact, real = NameSet(), set[str]()
        for name in added:
            compact.add(name)
            real.add(name)
            assert name in compact
        assert len(compact) == len(real)
        # A false hit needs two 64-bit keyed hashes to collide: ~1e-15 for these sizes.
        assert [n in compact for n in probed] == [n in real for n in probed]


def test_grows_and_stays_compact() -> None:
    compact = NameSet()
    added = [f"dir{i // 1000:04d}/file{i:06d}.txt" for i in range(3 * nameset.SMALL_LIMIT)]
    for i, name in enumerate(added):
        compact.add(name)
        if i == nameset.SMALL_LIMIT - 1:
            assert compact.nbytes() <= 80 * (i + 1)  # the set of hashes, before the table
    assert len(compact) == len(added)
    assert all(name in compact for name in added)
    assert not any(f"{name}x" in compact for name in added[:1000])
    assert compact.nbytes() <= 32 * len(added)  # 8-byte slots, at most 3/4 empty
