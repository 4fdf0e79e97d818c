"""files.record_batch: a batch of small files as finished tar records and manifest lines, the
same bytes TarWriter makes member by member; read_batch's answer where it cannot make them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from arcman._create.files import change_stamp, link_stamp, read_batch, record_batch
from arcman._create.headers import BLOCK, LNKTYPE, PADDING, REGTYPE
from arcman._create.tar_writer import _header
from arcman._manifest import FILE, HARDLINK, entry_line

NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=40).filter(
    lambda name: name not in (".", "..")
)
OWNER = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=32)
Item = tuple[str, int, int, int, int, int, int, str, str, str | None]


def _items(
    root: Path, names: list[str], user: str = "", group: str = "",
    links: dict[str, str] | None = None,
) -> list[Item]:
    """The wire items ContentReader sends for these files and ``links``, hard links by their
    targets (see files.RecordItem)."""
    items: list[Item] = []
    for name in names:
        st_ = os.stat(root / name)
        target = (links or {}).get(name)
        items.append((
            name, 0 if target else st_.st_size,
            link_stamp(st_) if target else change_stamp(st_), st_.st_mode & 0o7777,
            st_.st_uid, st_.st_gid, int(st_.st_mtime), user, group, target,
        ))
    return items


def _member_by_member(root: Path, items: list[Item]) -> tuple[bytes, str]:
    """What TarWriter.add and ManifestWriter.add make of the same members, one by one."""
    records, lines = [], []
    for name, size, _, mode, uid, gid, mtime, user, group, target in items:
        if target is not None:
            records.append(_header(name, LNKTYPE, mode, uid, gid, 0, mtime, target, user, group))
            lines.append(entry_line(name, HARDLINK, 0, mode, mtime, None, target))
            continue
        data = (root / name).read_bytes()
        records += [
            _header(name, REGTYPE, mode, uid, gid, size, mtime, "", user, group), data,
            PADDING[size % BLOCK],
        ]
        lines.append(entry_line(name, FILE, size, mode, mtime, hashlib.sha256(data).hexdigest()))
    return b"".join(records), "".join(lines)


@settings(max_examples=60, deadline=None)
@given(
    files=st.dictionaries(NAMES, st.binary(max_size=1500), min_size=1, max_size=20),
    mode=st.sampled_from([0o644, 0o755, 0o600, 0o4755]),
    owners=st.tuples(OWNER, OWNER),
)
def test_records_are_what_the_writer_makes_member_by_member(
    files: dict[str, bytes], mode: int, owners: tuple[str, str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, data in files.items():
            (root / name).write_bytes(data)
            (root / name).chmod(mode)
        items = _items(root, sorted(files), *owners)
        assert record_batch("", str(root), items) == _member_by_member(root, items)


def _read_answer(root: Path, items: list[Item]) -> list[tuple[bytes, str] | str]:
    return read_batch("", [(str(root / item[0]), item[1], item[2]) for item in items])


def test_a_name_that_needs_pax_gets_read_batchs_answer(tmp_path: Path) -> None:
    names = ["a.txt", "caf\u00e9.txt", "z" * 101]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    for name in names[1:]:
        items = _items(tmp_path, ["a.txt", name])
        answer = record_batch("", str(tmp_path), items)
        assert answer == _read_answer(tmp_path, items)
        assert answer[1] == (name.encode(), hashlib.sha256(name.encode()).hexdigest())


def test_owner_names_that_need_pax_get_read_batchs_answer(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    items = _items(tmp_path, ["a"], "u" * 33, "g")
    assert record_batch("", str(tmp_path), items) == _read_answer(tmp_path, items)


def test_a_file_that_cannot_be_read_gets_read_batchs_answer(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(name.encode() * 10)
    items = _items(tmp_path, ["a", "b", "c"])
    (tmp_path / "b").unlink()
    answer = record_batch("", str(tmp_path), items)
    assert isinstance(answer, list)
    assert answer[0] == (b"a" * 10, hashlib.sha256(b"a" * 10).hexdigest())
    assert isinstance(answer[1], str) and "No such file or directory" in answer[1]
    assert answer[2] == (b"c" * 10, hashlib.sha256(b"c" * 10).hexdigest())


def test_hard_links_are_what_the_writer_makes_member_by_member(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"content")
    os.link(tmp_path / "a", tmp_path / "b")
    os.link(tmp_path / "a", tmp_path / "c")
    items = _items(tmp_path, ["a", "b", "c"], "u", "g", links={"b": "a", "c": "a"})
    assert record_batch("", str(tmp_path), items) == _member_by_member(tmp_path, items)


def test_a_hard_link_that_changed_gets_each_members_answer(tmp_path: Path) -> None:
    """A name that no longer names its file fails its check: the caller reports it."""
    (tmp_path / "a").write_bytes(b"content")
    os.link(tmp_path / "a", tmp_path / "b")
    items = _items(tmp_path, ["a", "b"], links={"b": "a"})
    (tmp_path / "b").unlink()
    (tmp_path / "b").write_bytes(b"another file")
    answer = record_batch("", str(tmp_path), items)
    assert isinstance(answer, list) and answer[0] == _read_answer(tmp_path, items[:1])[0]
    assert isinstance(answer[1], str) and "changed while the archive was being made" in answer[1]


def test_a_hard_link_whose_target_needs_pax_gets_each_members_answer(tmp_path: Path) -> None:
    (tmp_path / ("t" * 101)).write_bytes(b"x")
    os.link(tmp_path / ("t" * 101), tmp_path / "b")
    items = _items(tmp_path, ["t" * 101, "b"], links={"b": "t" * 101})
    answer = record_batch("", str(tmp_path), items)
    assert answer == [(b"x", hashlib.sha256(b"x").hexdigest()), None]


def test_the_helpers_task_imports_only_the_standard_librarys_core() -> None:
    """The helper process starts on every large tree: json, tarfile or typing would add
    10-50 ms before it takes its first batch."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    heavy = ("json", "tarfile", "typing", "re", "tempfile", "functools", "dataclasses")
    code = (
        f"import sys; sys.path.insert(0, {src!r}); import arcman._create.files; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""
