"""NameList: a compact sequence of names that behaves like the list it replaces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arcman import _names
from arcman._names import NameList

# Names as os.fsdecode gives them: any text, undecodable bytes as lone surrogates.
names = st.lists(
    st.one_of(st.text(), st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")))
)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 3 names, so that small examples cross block boundaries."""
    monkeypatch.setattr(_names, "BLOCK", 3)


@given(names)
def test_behaves_like_a_list(values: list[str]) -> None:
    packed = NameList(values)
    assert len(packed) == len(values)
    assert list(packed) == values
    assert packed == values and packed == tuple(values) and packed == NameList(values)
    assert [packed[i] for i in range(len(values))] == values
    assert packed[1:-1:2] == values[1:-1:2]
    if values:
        assert packed[-1] == values[-1]
        assert packed != [*values, "extra"]


def test_index_errors_and_append() -> None:
    packed = NameList()
    with pytest.raises(IndexError):
        packed[0]
    packed.append("a/b")
    packed.append("")
    assert packed == ["a/b", ""] and packed[-2] == "a/b"
    with pytest.raises(IndexError):
        packed[2]
    assert packed != "a/b"
    assert "NameList" in repr(packed)


def test_indexing_after_iteration_and_across_blocks() -> None:
    values = [f"d{i % 7}/{'x' * (i % 300)}é{i}" for i in range(1000)]
    packed = NameList(values)
    assert list(packed) == values
    for i in (0, 2, 3, 999, 500, 1, -1, -1000):
        assert packed[i] == values[i]
    packed.append("last")
    assert packed[-2:] == [values[-1], "last"]


def test_is_compact(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree's names in archive order cost a few bytes each, not their length."""
    monkeypatch.setattr(_names, "BLOCK", 256)
    packed = NameList(f"dir{i // 1000:04d}/file{i:06d}.txt" for i in range(100_000))
    assert packed.nbytes() <= 100_000 * 8  # 22 bytes each as UTF-8
