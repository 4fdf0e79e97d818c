"""Portability: what the build machine (macOS) and the target (a Raspberry Pi: FAT/exFAT
media, mount points, a 32-bit time_t) do differently from a Linux developer's ext4."""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from arcman import ArchiveManager, DestinationError
from arcman._cli import main


def _archive(tmp_path: Path, name: str = "app.tar.gz") -> Path:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f.txt").write_text("data\n")
    archive = tmp_path / name
    with ArchiveManager() as manager:
        manager.create_archive(tree, archive)
    return archive


def test_a_mount_point_destination_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A USB stick mounted at DEST: the staging tree is made beside DEST, on the parent's file
    system, and the final rename onto the mount point fails (EBUSY/EXDEV), after the whole
    extraction, with a message that does not say why."""
    archive = _archive(tmp_path)
    dest = tmp_path / "usb"
    dest.mkdir()
    real_ismount, real_rename = os.path.ismount, os.rename
    monkeypatch.setattr(os.path, "ismount", lambda p: os.fspath(p) == str(dest) or real_ismount(p))

    def rename(src: str, dst: str) -> None:  # what the kernel does to a rename onto a mount
        if os.fspath(dst) == str(dest):
            raise OSError(16, os.strerror(16), dst)
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    assert main(["extract", str(archive), "-C", str(dest), "-q"]) == 5
    assert "mount point" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["app.tar.gz", "app.tar.gz.meta", "app.tar.gz.sha256",
                                            "tree", "usb"]
    with pytest.raises(DestinationError, match="mount point"), ArchiveManager() as manager:
        manager.extract_archive(archive, dest, replace=True)


def _links_archive(tmp_path: Path) -> Path:
    """A tar as GNU tar writes one: a file, a hard link to it, a symlink, a private dir."""
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        for name, kind, extra in [
            ("d", tarfile.DIRTYPE, {"mode": 0o700}),
            ("d/f", tarfile.REGTYPE, {}),
            ("hard", tarfile.LNKTYPE, {"linkname": "d/f"}),
            ("soft", tarfile.SYMTYPE, {"linkname": "d/f"}),
        ]:
            info = tarfile.TarInfo(name)
            info.type = kind
            for key, value in extra.items():
                setattr(info, key, value)
            if kind == tarfile.REGTYPE:
                info.size = 2
                tar.addfile(info, io.BytesIO(b"x\n"))
            else:
                tar.addfile(info)
    return archive


@pytest.mark.parametrize(
    ("call", "err", "member"),
    [
        ("link", 1, "hard link hard (to d/f)"),  # FAT: EPERM
        ("symlink", 38, "symlink soft (to d/f)"),  # FUSE exFAT/FAT: ENOSYS
        ("chmod", 1, "mode 0700 of d"),  # FAT: a mode it cannot hold is EPERM
    ],
)
def test_a_link_or_mode_the_file_system_refuses_names_the_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    call: str, err: int, member: str,
) -> None:
    """The message named the link's target ("cannot write d/f"), or the staging directory's
    path, not the member that failed, nor that the file system lacks the feature."""
    archive = _links_archive(tmp_path)
    real = getattr(os, call)

    def refuse(*args: object, **kwargs: object) -> object:
        if call == "chmod" and not str(args[0]).endswith("/d"):
            return real(*args, **kwargs)
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(os, call, refuse)
    dest = tmp_path / "dest"
    assert main(["extract", str(archive), "-C", str(dest), "-q"]) == 5
    message = capsys.readouterr().err
    assert f"cannot write {member}: {os.strerror(err)}" in message
    assert "FAT" in message and "staging" not in message
    assert not dest.exists()


@pytest.mark.parametrize("kind", ["file", "dir", "symlink"])
def test_an_mtime_past_a_32_bit_time_t_is_a_destination_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    """Where time_t has 32 bits (Raspberry Pi OS armhf), os.utime raises OverflowError for
    2038 and later: it escaped as an internal error (exit 70), not ArchiveError."""
    archive = tmp_path / "late.tar"
    late = 2**31 + 10
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("late")
        info.mtime = late
        if kind == "dir":
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        elif kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "x"
            tar.addfile(info)
            target = tarfile.TarInfo("x")
            tar.addfile(target, io.BytesIO(b""))
        else:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"x\n"))
    real = os.utime

    def utime32(path: object, times: tuple[int, int] | None = None, **kwargs: object) -> None:
        if times is not None and not all(-(2**31) <= t < 2**31 for t in times):
            raise OverflowError("timestamp out of range for platform time_t")
        real(path, times, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "utime", utime32)
    dest = tmp_path / "dest"
    assert main(["extract", str(archive), "-C", str(dest), "-q"]) == 5
    assert f"cannot write {'mtime of ' if kind != 'file' else ''}late: mtime {late}" in (
        capsys.readouterr().err
    )
    assert not dest.exists()
    with pytest.raises(DestinationError), ArchiveManager() as manager:
        manager.extract_archive(archive, dest)


def test_an_unreadable_destination_is_a_destination_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DEST exists but cannot be listed (mode 0333, another user's): os.listdir's
    PermissionError escaped as an internal error (exit 70)."""
    archive = _archive(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    real = os.listdir

    def listdir(path: object = ".") -> list[str]:
        if os.fspath(path) == str(dest):  # type: ignore[call-overload]
            raise PermissionError(13, os.strerror(13), path)
        return real(path)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(os, "listdir", listdir)
    assert main(["extract", str(archive), "-C", str(dest), "-q"]) == 5
    assert f"cannot write {dest}: Permission denied" in capsys.readouterr().err


def test_a_full_file_system_at_the_case_probe_is_a_destination_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The probe file that tells a case-insensitive file system (macOS, FAT) may not fit
    (ENOSPC, a full FAT16 root directory): its OSError escaped as an internal error."""
    archive = _archive(tmp_path)
    real = os.open

    def probe_fails(file: str, *args: Any, **kwargs: Any) -> int:
        if "arcman-probe-" in str(file):
            raise OSError(28, os.strerror(28), file)
        return real(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", probe_fails)
    dest = tmp_path / "dest"
    assert main(["extract", str(archive), "-C", str(dest), "-q"]) == 5
    assert "no space left on device" in capsys.readouterr().err
    assert not dest.exists() and not [n for n in os.listdir(tmp_path) if "staging" in n]


def _like_fat(monkeypatch: pytest.MonkeyPatch, root: Path, mask: int) -> None:
    """chmod and fchmod under ``root`` as Linux's vfat and exfat drivers treat them (mounted
    with umask ``mask``): every inode shows 0o777 & ~mask, and a chmod is EPERM unless its
    read and execute bits are those, and its write bits all of them or (files) none."""
    shown = 0o777 & ~mask
    real_chmod, real_fchmod = os.chmod, os.fchmod

    def allowed(is_dir: bool, mode: int) -> bool:
        perm = mode & 0o777 & ~mask
        write = perm & 0o222
        return perm & 0o555 == shown & 0o555 and (
            write == shown & 0o222 or (not is_dir and not write)
        )

    def chmod(path: Any, mode: int, *args: Any, **kwargs: Any) -> None:
        full = os.path.abspath(os.fspath(path))
        if full.startswith(f"{root}/") and not allowed(os.path.isdir(full), mode):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), full)
        real_chmod(path, mode, *args, **kwargs)

    def fchmod(fd: int, mode: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(f"{root}/") and not allowed(
            stat.S_ISDIR(os.fstat(fd).st_mode), mode
        ):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        real_fchmod(fd, mode)

    monkeypatch.setattr(os, "chmod", chmod)
    monkeypatch.setattr(os, "fchmod", fchmod)


@pytest.mark.skipif(sys.platform != "linux", reason="finds an fd's path in /proc")
@pytest.mark.parametrize("mask", [0o022, 0o000], ids=["umask=022", "umask=000"])
def test_a_file_system_without_modes_gets_the_tree_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    mask: int,
) -> None:
    """A Pi's boot partition or a USB stick (FAT, exFAT) refuses every chmod it cannot store:
    an archive with a 0700 directory (or any tree, on a umask=000 mount) could not be
    extracted there at all. The probe finds out, and the tree is extracted with the file
    system's defaults and a warning."""
    tree = tmp_path / "tree"
    (tree / "private").mkdir(parents=True)
    (tree / "private" / "key").write_text("secret\n")
    (tree / "private" / "key").chmod(0o600)
    (tree / "private").chmod(0o700)
    (tree / "run.sh").write_text("#!/bin/sh\n")
    (tree / "run.sh").chmod(0o755)
    archive = tmp_path / "app.tar.gz"
    with ArchiveManager() as manager:
        manager.create_archive(tree, archive)
    fat = tmp_path / "boot"
    fat.mkdir()
    _like_fat(monkeypatch, fat, mask)
    assert main(["extract", str(archive), "-C", str(fat / "app")]) == 0
    assert "keeps no Unix permissions" in caplog.text
    assert (fat / "app" / "private" / "key").read_text() == "secret\n"
    assert (fat / "app" / "run.sh").read_text() == "#!/bin/sh\n"


def _deployed(tmp_path: Path) -> tuple[Path, Path]:
    """An archive and a deployed tree at /opt/app, say, with its own file as it was."""
    archive = _archive(tmp_path)
    dest = tmp_path / "app"
    (dest / "data").mkdir(parents=True)
    (dest / "VERSION").write_text("v1")
    return archive, dest


def _fake_mountinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *points: str) -> None:
    """/proc/self/mountinfo listing ``points`` as the kernel writes them (a space as \\040)."""
    from arcman._extract import commit

    table = tmp_path / "mountinfo"
    table.write_text("".join(
        f"{n} 1 0:{n} / {p.replace(' ', chr(92) + '040')} rw,relatime shared:1 - tmpfs tmpfs rw\n"
        for n, p in enumerate(["/", *points], 20)
    ))
    monkeypatch.setattr(commit, "_MOUNTINFO", str(table))


@pytest.mark.parametrize("keep_previous", [False, True])
def test_replace_refuses_a_tree_with_a_file_system_mounted_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_previous: bool
) -> None:
    """A Pi's data partition mounted at /opt/app/my data: replacing /opt/app would move it
    away with the old tree, and removing that tree (shutil.rmtree goes into mounts) would
    delete the partition's files. Refused before any work, DEST as it was."""
    archive, dest = _deployed(tmp_path)
    (dest / "my data").mkdir()
    _fake_mountinfo(tmp_path, monkeypatch, str(tmp_path / "elsewhere"), str(dest / "my data"))
    with pytest.raises(DestinationError, match=r"mounted at '.*/app/my data' in "), \
            ArchiveManager() as manager:
        manager.extract_archive(archive, dest, replace=True, keep_previous=keep_previous)
    assert sorted(os.listdir(dest)) == ["VERSION", "data", "my data"]
    assert sorted(os.listdir(tmp_path)) == ["app", "app.tar.gz", "app.tar.gz.meta",
                                            "app.tar.gz.sha256", "mountinfo", "tree"]


def test_keep_previous_refuses_a_previous_tree_with_a_mount_it_would_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, dest = _deployed(tmp_path)
    (tmp_path / "app.prev" / "data").mkdir(parents=True)
    _fake_mountinfo(tmp_path, monkeypatch, str(tmp_path / "app.prev" / "data"))
    with ArchiveManager() as manager:
        manager.extract_archive(archive, dest, replace=True)  # app.prev is not touched
        with pytest.raises(DestinationError, match=r"app\.prev/data' in .*keeping the replaced"):
            manager.extract_archive(archive, dest, replace=True, keep_previous=True)
    assert os.listdir(tmp_path / "app.prev") == ["data"]


def test_without_a_mount_table_a_directory_on_another_device_is_a_mount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """macOS and the BSDs have no /proc: a directory whose device differs is a mount point."""
    from arcman._extract import commit

    _, dest = _deployed(tmp_path)
    (dest / "data" / "deeper").mkdir()
    monkeypatch.setattr(commit, "_MOUNTINFO", str(tmp_path / "no-proc"))
    assert commit.mounts_inside(str(dest)) == []
    real_lstat = os.lstat

    def lstat(path: Any, *args: Any, **kwargs: Any) -> Any:
        st = real_lstat(path, *args, **kwargs)
        if os.fspath(path) == str(dest / "data"):
            return os.stat_result((*st[:2], st.st_dev + 1, *st[3:]))
        return st

    monkeypatch.setattr(os, "lstat", lstat)
    assert commit.mounts_inside(str(dest)) == [str(dest / "data")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mounts a tmpfs (Linux)")
def test_a_real_mount_inside_dest_keeps_its_files(tmp_path: Path) -> None:
    import subprocess

    archive, dest = _deployed(tmp_path)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(dest / "data")],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
    try:
        (dest / "data" / "db").write_text("precious")
        assert main(["extract", str(archive), "-C", str(dest), "--replace", "-q"]) == 5
        assert (dest / "data" / "db").read_text() == "precious"
        assert (dest / "VERSION").read_text() == "v1"
    finally:  # wherever the mount is now (without the check, in a removed staging tree)
        with open("/proc/self/mounts") as table:
            points = [line.split()[1] for line in table]
        for point in points:
            if point.startswith(f"{tmp_path}/"):
                subprocess.run(["umount", "-l", point], check=True)
