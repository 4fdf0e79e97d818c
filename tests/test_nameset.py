"""NameSet: the guard's compact set of names answers like a real set."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from arcman._extract.nameset import NameSet

names = st.lists(st.text(max_size=12), max_size=300)


@given(names, names)
def test_answers_like_a_set(added: list[str], probed: list[str]) -> None:
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
    added = [f"dir{i // 1000:04d}/file{i:06d}.txt" for i in range(50_000)]
    for name in added:
        compact.add(name)
    assert len(compact) == len(added)
    assert all(name in compact for name in added)
    assert not any(f"{name}x" in compact for name in added[:1000])
    assert compact.nbytes() <= 32 * len(added)  # 8-byte slots, at most 3/4 empty
