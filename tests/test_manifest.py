"""The embedded manifest: its format, and every way an archive can disagree with it."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcman import ArchiveConfig, ArchiveManager, IntegrityError
from arcman._extract import check
from arcman._extract.check import (
    Observed,
    ObservedLog,
    check_against_manifest,
    check_entries,
    pack_record,
)
from arcman._manifest import (
    ManifestEntry,
    ManifestWriter,
    SpooledManifest,
    entry_line,
    read_manifest,
)
from helpers import MANIFEST, tar_file

Members = list[tuple[tarfile.TarInfo, bytes | None]]


def _arcman_tar(tmp_path: Path, sample_tree: Path) -> Members:
    archive = tmp_path / "good.tar"
    config = ArchiveConfig(create_checksums=False, include_metadata=False)
    with ArchiveManager(config) as manager:
        manager.create_archive(sample_tree, archive)
    with tarfile.open(archive) as t:
        return [
            (info, t.extractfile(info).read() if info.isfile() else None)  # type: ignore[union-attr]
            for info in t.getmembers()
        ]


def _rewrite(path: Path, members: Members) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _edit_manifest(members: Members, edit: Callable[[list[str]], list[str]]) -> Members:
    info, data = members[-1]
    assert info.name == MANIFEST and data is not None
    lines = edit(data.decode().splitlines())
    return [*members[:-1], (info, "".join(line + "\n" for line in lines).encode())]


def _retarget(lines: list[str], path: str, **changes: object) -> list[str]:
    out = []
    for line in lines:
        obj = json.loads(line)
        if obj.get("path") == path:
            obj.update(changes)
        out.append(json.dumps(obj))
    return out


def _chmod(item: tuple[tarfile.TarInfo, bytes | None], mode: int, name: str) -> tuple[
    tarfile.TarInfo, bytes | None
]:
    info, data = item
    if info.name == name:
        info.mode = mode
    return info, data


TAMPERINGS: dict[str, Callable[[Members], Members]] = {
    "closing-line-cut": lambda m: _edit_manifest(m, lambda lines: lines[:-1]),
    "entry-dropped": lambda m: _edit_manifest(
        m, lambda lines: [x for x in lines if '"a.txt"' not in x]
    ),
    "wrong-digest": lambda m: _edit_manifest(
        m, lambda lines: _retarget(lines, "a.txt", sha256="0" * 64)
    ),
    "wrong-size": lambda m: _edit_manifest(m, lambda lines: _retarget(lines, "a.txt", size=7)),
    "wrong-kind": lambda m: _edit_manifest(m, lambda lines: _retarget(lines, "empty", type="file")),
    "wrong-link": lambda m: _edit_manifest(m, lambda lines: _retarget(lines, "link", target="x")),
    "not-json": lambda m: _edit_manifest(m, lambda lines: [lines[0], "{", *lines[1:]]),
    "bad-version": lambda m: _edit_manifest(
        m, lambda lines: ['{"arcman_manifest": 99}', *lines[1:]]
    ),
    "member-added": lambda m: [*m[:-1], tar_file("extra.txt"), m[-1]],
    "member-removed": lambda m: [x for x in m if x[0].name != "a.txt"],
    "member-after-manifest": lambda m: [*m, tar_file("late.txt")],
    "header-mode-changed": lambda m: [_chmod(i, 0o777, "run.sh") for i in m],
    "member-content-changed": lambda m: [
        (i, b"HELLO\n" if i.name == "a.txt" else d) for i, d in m
    ],
}


@pytest.mark.parametrize("case", sorted(TAMPERINGS))
def test_disagreement_with_the_manifest_is_caught(
    tmp_path: Path, sample_tree: Path, case: str
) -> None:
    archive = _rewrite(tmp_path / "bad.tar", TAMPERINGS[case](_arcman_tar(tmp_path, sample_tree)))
    with ArchiveManager() as manager:
        with pytest.raises(IntegrityError):
            manager.verify_archive(archive)
        with pytest.raises(IntegrityError):
            manager.extract_archive(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_untampered_rewrite_still_verifies(tmp_path: Path, sample_tree: Path) -> None:
    archive = _rewrite(tmp_path / "same.tar", _arcman_tar(tmp_path, sample_tree))
    with ArchiveManager() as manager:
        assert manager.verify_archive(archive).verification == "manifest"


def test_manifest_is_last_and_not_extracted(tmp_path: Path, sample_tree: Path) -> None:
    members = _arcman_tar(tmp_path, sample_tree)
    assert members[-1][0].name == MANIFEST
    entries = list(read_manifest(io.BytesIO(members[-1][1] or b"")))
    assert [e.path for e in entries] == [info.name for info, _ in members[:-1]]
    with ArchiveManager() as manager:
        manager.extract_archive(tmp_path / "good.tar", tmp_path / "dest")
    assert not (tmp_path / "dest" / MANIFEST).exists()


def test_writer_and_parser_round_trip() -> None:
    entries = [
        ManifestEntry("d", "dir", 0, 0o755, 1),
        ManifestEntry("d/ünï\nline", "file", 3, 0o644, 2, "a" * 64),
        ManifestEntry("l", "symlink", 0, 0o777, 3, target="d"),
    ]
    writer = ManifestWriter()
    for e in entries:
        writer.add(e.path, e.kind, e.size, e.mode, e.mtime, e.sha256, e.target)
    spool, length = writer.finish()
    data = spool.read()
    writer.close()
    assert len(data) == length
    assert json.loads(data.splitlines()[-1]) == {"end": True, "count": 3, "size": 3}
    assert list(read_manifest(io.BytesIO(data))) == entries


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"[]\n",
        b'{"arcman_manifest":1}\n',
        b'{"arcman_manifest":1}\n{"end":true,"count":1}\n',
    ],
)
def test_parser_rejects_malformed_manifests(data: bytes) -> None:
    with pytest.raises(IntegrityError) as caught:
        list(read_manifest(io.BytesIO(data)))
    assert not str(caught.value).endswith(": ")  # a reason, even for an empty one


def test_an_empty_manifest_says_so() -> None:
    with pytest.raises(IntegrityError, match=r"^manifest is malformed: empty$"):
        list(read_manifest(io.BytesIO(b"")))


def _entries(*paths: str) -> list[ManifestEntry]:
    return [ManifestEntry(p, "dir", 0, 0o755, 0) for p in paths]


def _seen(*paths: str) -> list[Observed]:
    return [Observed(p, "dir", 0, 0o755, 0) for p in paths]


@pytest.mark.parametrize(
    ("seen", "listed", "message"),
    [
        (("a", "b", "c"), ("a", "b", "c"), None),
        (("a", "x", "b"), ("a", "b"), "'x' is not in the manifest"),
        (("a", "b", "x"), ("a", "b"), "'x' is not in the manifest"),
        (("a", "c"), ("a", "b", "c"), "'b' is in the manifest but not in the archive"),
        (("a", "b"), ("a", "b", "c"), "'c' is in the manifest but not in the archive"),
        (("b", "a"), ("a", "b"), "'b' is out of the manifest's order"),
        (("a", "a"), ("a",), "'a' is out of the manifest's order"),  # a repeated directory
        (("a", "a"), ("a", "a"), "manifest lists a path twice"),
    ],
)
def test_lockstep_check_names_the_member(
    seen: tuple[str, ...], listed: tuple[str, ...], message: str | None
) -> None:
    if message is None:
        check_entries(_seen(*seen), _entries(*listed))
        return
    with pytest.raises(IntegrityError, match=re.escape(message)):
        check_entries(_seen(*seen), _entries(*listed))


def test_file_listed_twice_is_reported() -> None:
    def files(*paths: str) -> list[Observed]:
        return [Observed(p, "file", 0, 0o644, 0, "0" * 64) for p in paths]

    listed = [
        ManifestEntry(o.path, o.kind, 0, 0o644, 0, o.sha256) for o in files("a", "b", "a", "c")
    ]
    with pytest.raises(IntegrityError, match="lists a path twice"):
        check_entries(files("a", "b", "c"), listed)


def test_member_moved_out_of_order_is_named(tmp_path: Path, sample_tree: Path) -> None:
    members = _arcman_tar(tmp_path, sample_tree)
    last = members[-2]  # the last member before the manifest, moved to the front
    archive = _rewrite(tmp_path / "moved.tar", [last, *members[:-2], members[-1]])
    expected = re.escape(f"{last[0].name!r} is out of the manifest's order")
    with ArchiveManager() as manager, pytest.raises(IntegrityError, match=expected):
        manager.verify_archive(archive)


# The fast check (manifest lines matched as text) against the plain one (every line parsed and
# compared): same verdict, same error, on members and manifests of every sort.
Member = tuple[str, str, int, int, int, str | None, str | None]

_PATHS = ["a", "b", "d", "d/é", 'q"uote', "back\\slash", "new\nline", "\x1c", "\u2028", "\udcff"]
_DIGESTS = ["0" * 64, "ab" * 32, "AB" * 32]
_TARGETS = ["a", "", 'x"y', "é"]
_KINDS = ["file", "file", "dir", "dir", "symlink", "hardlink", "special"]


@st.composite
def _members(draw: st.DrawFn) -> list[Member]:
    members = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(_KINDS))
        target = None
        if kind in ("symlink", "hardlink"):
            target = draw(st.none() | st.sampled_from(_TARGETS))
        members.append((
            draw(st.sampled_from(_PATHS)),
            kind,
            draw(st.integers(-1, 2**40)) if kind == "file" else 0,
            draw(st.integers(0, 0o177777)),
            draw(st.integers(-(2**40), 2**40)),
            draw(st.sampled_from(_DIGESTS[:2])) if kind == "file" else None,
            target,
        ))
    return members


_VALUES = st.one_of(
    st.sampled_from(_PATHS + _DIGESTS + _TARGETS + ["file", "dir", "symlink", "hardlink"]),
    st.integers(-1, 0o177777),
    st.sampled_from([None, True, 1.5, [], {}]),
)
_KEYS = ["path", "type", "size", "mode", "mtime", "sha256", "target", "end", "count",
         "arcman_manifest"]


@st.composite
def _edits(draw: st.DrawFn, lines: list[str]) -> list[str]:
    """Manifest lines (without newlines), each edit either harmless or not."""
    lines = list(lines)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(
            ["set", "drop-key", "reformat", "swap", "duplicate", "drop", "insert", "garbage"]
        ))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if not lines and op != "insert":
            continue
        if op in ("set", "drop-key", "reformat"):
            try:
                obj = json.loads(lines[i])
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            if op == "set":
                obj[draw(st.sampled_from(_KEYS))] = draw(_VALUES)
            elif op == "drop-key" and obj:
                del obj[draw(st.sampled_from(sorted(obj)))]
            if draw(st.booleans()):
                obj = dict(reversed(obj.items()))
            lines[i] = draw(st.sampled_from([" ", "", "\t", "\r"])) + json.dumps(
                obj, ensure_ascii=draw(st.booleans())
            ) + draw(st.sampled_from([" ", "", "\r"]))
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "drop":
            del lines[i]
        elif op == "insert":
            lines.insert(i, entry_line(draw(st.sampled_from(_PATHS)), "dir", 0, 0o755, 0)[:-1])
        else:
            lines.insert(i, draw(st.sampled_from(["", "{", "[]", "null", "\x00"])))
    return lines


def _verdict(judge: Callable[[], None]) -> tuple[str, str, str | None] | None:
    try:
        judge()
    except Exception as exc:  # any exception at all must be the same on both paths
        return type(exc).__name__, str(exc), getattr(exc, "member", None)
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=_members(), data=st.data())
def test_fast_check_judges_as_the_plain_one(members: list[Member], data: st.DataObject) -> None:
    writer = ManifestWriter()
    for path, kind, size, mode, mtime, digest, target in members:
        writer.add(path, kind, size, mode & 0o7777, mtime, digest, target)
    spool, _ = writer.finish()
    written = spool.read().decode("utf-8", "surrogateescape")
    writer.close()
    lines = data.draw(_edits(written.removesuffix("\n").split("\n")))
    text = "\n".join(lines) + data.draw(st.sampled_from(["\n", "", "\n\n"]))
    log, manifest = ObservedLog(), SpooledManifest()
    try:
        for path, kind, size, mode, mtime, digest, target in members:
            log.add(
                pack_record(path, kind, size, mode, mtime, target),
                bytes.fromhex(digest) if digest else None,
            )
        log.finish()
        manifest.write(text.encode("utf-8", "surrogateescape"))
        plain = _verdict(lambda: check_entries(log, manifest))
        assert _verdict(lambda: check_against_manifest(log, manifest)) == plain
        if text == written:
            # what arcman writes is matched without parsing, unless it needs explaining
            fast = check._as_written(log.fields(), manifest.raw())
            assert fast == (plain is None and _plain_members(members))
    finally:
        log.close()
        manifest.close()


def _plain_members(members: list[Member]) -> bool:
    """Members whose manifest lines the fast check takes as they are: no kind the manifest
    cannot hold, no link without a target, no directory twice."""
    dirs = [m[0] for m in members if m[1] == "dir"]
    return len(dirs) == len(set(dirs)) and all(
        m[1] in ("file", "dir") or (m[1] in ("symlink", "hardlink") and m[6] is not None)
        for m in members
    )


def test_fast_check_leaves_other_mtimes_to_the_plain_one() -> None:
    """A zip's 2-second times differ from the manifest's: still a pass, as parsed."""
    writer = ManifestWriter()
    writer.add("a", "file", 1, 0o644, 1_700_000_001, "0" * 64)
    spool, _ = writer.finish()
    log, manifest = ObservedLog(), SpooledManifest()
    log.add(pack_record("a", "file", 1, 0o100644, 1_700_000_000, None), bytes(32))
    log.finish()
    manifest.write(spool.read())
    writer.close()
    assert not check._as_written(log.fields(), manifest.raw())
    check_against_manifest(log, manifest)
    log.close()
    manifest.close()


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["file", "dir", "symlink", "hardlink"]),
    path=st.text() | st.sampled_from(_PATHS),
    target=st.text() | st.sampled_from(_TARGETS + _PATHS),
    size=st.integers(0, 2**63 - 1),
    mode=st.integers(0, 0o7777),
    mtime=st.integers(-(2**63), 2**63 - 1),
    digest=st.sampled_from(_DIGESTS),
)
def test_a_line_is_what_json_makes_of_its_entry(
    kind: str, path: str, target: str, size: int, mode: int, mtime: int, digest: str
) -> None:
    """Lines are formatted without json, but must be the text json writes for the entry: the
    fast check matches lines that earlier versions wrote with json."""
    link = target if kind in ("symlink", "hardlink") else None
    sha256 = digest if kind == "file" else None
    obj: dict[str, object] = {"path": path, "type": kind}
    if kind == "file":
        obj["size"] = size
    obj.update(mode=mode, mtime=mtime)
    obj.update({} if sha256 is None else {"sha256": sha256})
    obj.update({} if link is None else {"target": link})
    line = entry_line(path, kind, size, mode, mtime, sha256, link)
    assert line == json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
