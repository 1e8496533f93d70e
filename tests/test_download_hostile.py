"""Hostile archives: bombs, escapes, links, devices, duplicates, lying headers.

Each test hands :func:`safe_extract` (or :func:`check_whole`) an archive a careless or
malicious publisher could make, and checks that it is refused with an
:class:`ArchiveError` naming what to do, that nothing was written outside the
destination, and that nothing of it remains (no destination, no temporary folder).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import random
import shutil
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from evacamel.dataset import archive as arc
from evacamel.dataset.archive import (ArchiveError, ExtractLimits, archive_kind, check_archive,
                                      check_whole, safe_extract)


def zip_bytes(entries: dict[str, bytes] | list[tuple[str, bytes]],
              compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of ``name -> data`` (a list may repeat a name)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in (entries.items() if isinstance(entries, dict) else entries):
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def assert_nothing_left(tmp_path: Path, dest: Path) -> None:
    """No destination, no temporary folder beside it, nothing written above tmp_path."""
    assert not dest.exists()
    left = dest.parent.iterdir() if dest.parent.exists() else []
    assert not [p.name for p in left if p.name.startswith(f".{dest.name}")]
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def refused(tmp_path: Path, data: bytes, suffix: str, match: str,
            limits: ExtractLimits = ExtractLimits()) -> str:
    """Extract ``data`` (written as ``archive<suffix>``); it must be refused, leaving nothing."""
    archive = tmp_path / f"archive{suffix}"
    archive.write_bytes(data)
    dest = tmp_path / "data" / "ds"
    with pytest.raises(ArchiveError, match=match) as err:
        safe_extract(archive, dest, limits=limits)
    assert_nothing_left(tmp_path, dest)
    assert "\n" not in str(err.value) and str(archive) in str(err.value)
    return str(err.value)


# -- bombs: limited by the archive's size and by the free disk, per entry and in total ----

NOISE = random.Random(0).randbytes(50_000)  # does not compress
ZEROS = bytes(32 << 20)  # 32 MiB: over the 16 MiB below which ratios are not checked


def test_tar_gz_bomb_is_refused_with_the_option_that_allows_it(tmp_path):
    info = tarfile.TarInfo("zeros.bin")
    data = tar_bytes([(info, ZEROS)], mode="w:gz")
    assert len(ZEROS) / len(data) > 500  # what the probe found: tar entries had no ratio limit
    message = refused(tmp_path, data, ".tar.gz", "--max-ratio")
    assert "bomb" in message
    limits = ExtractLimits(max_ratio=len(ZEROS) / len(data) + 1)  # trusting it extracts it
    out = safe_extract(tmp_path / "archive.tar.gz", tmp_path / "ok", limits=limits)
    assert (out / "zeros.bin").stat().st_size == len(ZEROS)


def test_zip_entry_expanding_hundreds_of_times_is_refused(tmp_path):
    # 32 MiB that deflate to a few hundred times less: under the old 1000x entry limit
    data = bytearray(ZEROS)
    for i in range(0, len(data), 16384):
        data[i:i + 64] = bytes(range(i % 97, i % 97 + 64))
    archive = zip_bytes({"mostly_zeros.bin": bytes(data)})
    assert 100 < len(data) / len(archive) < 1000
    refused(tmp_path, archive, ".zip", r"'mostly_zeros.bin' expands \d+x .*--max-ratio")


def test_many_small_entries_adding_up_to_a_bomb_are_refused(tmp_path):
    # each entry is under the ratio floor; together they expand 1000x the archive
    archive = zip_bytes({f"part{i}.bin": bytes(1 << 20) for i in range(40)})
    refused(tmp_path, archive, ".zip", r"expands to 41\.9 MB, \d+x its size .*--max-ratio")


def test_sparse_tar_member_is_counted_at_its_full_size(tmp_path):
    info = tarfile.TarInfo("sparse.bin")
    info.pax_headers = {"GNU.sparse.map": "0,10", "GNU.sparse.size": str(64 << 20)}
    data = tar_bytes([(info, b"x" * 10)])
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getmembers()[0].size == 64 << 20  # 10 bytes stored, 64 MiB extracted
    refused(tmp_path, data, ".tar", "--max-ratio")


def test_archive_larger_than_the_free_disk_is_refused(tmp_path, monkeypatch):
    archive = zip_bytes({"a.bin": bytes(range(256)) * 400, "b.bin": b"b" * 1000})
    free = shutil._ntuple_diskusage(total=10**9, used=10**9 - 50_000, free=50_000)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: free)
    message = refused(tmp_path, archive, ".zip", "free some space or choose another --dest")
    assert "103.4 kB" in message and "50.0 kB" in message


def test_max_bytes_and_max_files_name_their_options(tmp_path):
    many = zip_bytes({f"f{i}.txt": b"." for i in range(50)})
    refused(tmp_path, many, ".zip", "more than the limit of 20; .*--max-files",
            ExtractLimits(max_files=20))
    refused(tmp_path, many, ".zip", "more than the limit of 10; .*--max-bytes",
            ExtractLimits(max_bytes=10))
    assert check_archive(tmp_path / "archive.zip") == (50, 50)
    with pytest.raises(ValueError, match="max_files must be positive"):
        ExtractLimits(max_files=0)


# -- headers that lie ---------------------------------------------------------------------------

def _patch_zip_size(data: bytes, size: int) -> bytes:
    """The zip with its (only) entry's uncompressed size replaced in both headers."""
    out = bytearray(data)
    struct.pack_into("<I", out, 22, size)  # local file header
    struct.pack_into("<I", out, out.find(b"PK\x01\x02") + 24, size)  # central directory
    return bytes(out)


def test_zip_entry_larger_than_its_header_says_is_refused(tmp_path):
    data = _patch_zip_size(zip_bytes({"a.bin": bytes(1 << 20)}), 10)
    refused(tmp_path, data, ".zip", "'a.bin' cannot be read whole .*CRC")


def test_zip_entry_smaller_than_its_header_says_is_refused(tmp_path):
    data = _patch_zip_size(zip_bytes({"a.bin": bytes(1 << 20)}), 2 << 20)
    refused(tmp_path, data, ".zip", "'a.bin' holds 1048576 bytes but its header says 2097152")


def test_corrupt_member_after_good_ones_leaves_nothing(tmp_path):
    data = bytearray(zip_bytes({"good.txt": b"fine" * 100, "bad.bin": bytes(range(256)) * 64},
                               compression=zipfile.ZIP_STORED))
    start = data.find(bytes(range(256)))
    data[start + 100] ^= 0xFF  # one flipped byte in the second member: its CRC fails
    refused(tmp_path, bytes(data), ".zip", "'bad.bin' cannot be read whole")


# -- names and types that escape or collide ------------------------------------------------

ESCAPING_NAMES = [
    ("../evil.txt", r"'\.\.'"), ("ok/../../evil.txt", r"'\.\.'"), ("..\\..\\evil.txt", r"'\.\.'"),
    ("/tmp/evil.txt", "absolute"), ("C:/evil.txt", "absolute"), ("C:evil.txt", "absolute"),
    ("\\\\server\\share\\evil.txt", "absolute"), ("\\evil.txt", "absolute"),
]


@pytest.mark.parametrize("name,why", ESCAPING_NAMES)
def test_escaping_zip_names_are_refused(tmp_path, name, why):
    refused(tmp_path, zip_bytes({"fine.txt": b"ok", name: b"pwned"}), ".zip", why)


@pytest.mark.parametrize("name,why", ESCAPING_NAMES)
def test_escaping_tar_names_are_refused(tmp_path, name, why):
    refused(tmp_path, tar_bytes([(member("fine.txt"), b"ok"), (member(name), b"pwned")]),
            ".tar", why)


@pytest.mark.parametrize("info,why", [
    (member("link", tarfile.SYMTYPE, "/tmp/evil.txt"), "a symlink"),
    (member("link", tarfile.SYMTYPE, "../../evil.txt"), "a symlink"),
    (member("hard", tarfile.LNKTYPE, "../../evil.txt"), "a hardlink"),
    (member("hard", tarfile.LNKTYPE, "fine.txt"), "a hardlink"),
    (member("dev", tarfile.CHRTYPE), "a device, fifo"),
    (member("disk", tarfile.BLKTYPE), "a device, fifo"),
    (member("pipe", tarfile.FIFOTYPE), "a device, fifo"),
])
def test_tar_links_and_devices_are_refused(tmp_path, info, why):
    refused(tmp_path, tar_bytes([(member("fine.txt"), b"ok"), (info, None)]), ".tar", why)


@pytest.mark.parametrize("mode,why", [(0o120777, "a symlink"), (0o010644, "a special file")])
def test_zip_symlinks_and_fifos_are_refused(tmp_path, mode, why):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = mode << 16
        zf.writestr(info, "/tmp/evil.txt")
    refused(tmp_path, buf.getvalue(), ".zip", why)


@pytest.mark.parametrize("names", [["a.txt", "a.txt"], ["dir/a.txt", "dir/./a.txt"],
                                   ["A.txt", "a.txt"], ["a", "a/b.txt"], ["a/b.txt", "a"]])
def test_entries_landing_on_each_other_are_refused(tmp_path, names):
    same = names[0] == names[1]
    with pytest.warns(UserWarning, match="Duplicate") if same else contextlib.nullcontext():
        data = zip_bytes([(n, n.encode()) for n in names])
    refused(tmp_path, data, ".zip", "appears twice|which is a file")
    tar = tar_bytes([(member(n), n.encode()) for n in names])
    refused(tmp_path, tar, ".tar", "appears twice|which is a file")


def test_repeated_folders_are_fine(tmp_path):
    with pytest.warns(UserWarning, match="Duplicate name: 'd/'"):
        data = zip_bytes([("d/", b""), ("d/", b""), ("d/a.txt", b"a"), ("D/b.txt", b"b")])
    archive = tmp_path / "ok.zip"
    archive.write_bytes(data)
    out = safe_extract(archive, tmp_path / "ds")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == \
        ["D", "D/b.txt", "d", "d/a.txt"]


def test_zip_name_with_a_nul_byte_is_refused(tmp_path):
    stand_in = b"a.txtX../../evil.txt"
    data = zip_bytes({stand_in.decode(): b"pwned"}).replace(stand_in, b"a.txt\x00../../evil.txt")
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["a.txt"]  # zipfile hides it
    refused(tmp_path, data, ".zip", "NUL byte")


@pytest.mark.parametrize("name", ["", ".", "./"])
def test_tar_file_without_a_name_is_refused(tmp_path, name):
    refused(tmp_path, tar_bytes([(member(name), b"data")]), ".tar", "without a name")


def test_encrypted_and_unknown_compression_zip_entries_are_refused(tmp_path):
    data = bytearray(zip_bytes({"secret.txt": b"not really encrypted"}))
    struct.pack_into("<H", data, 6, 0x1)  # the "encrypted" flag, in the local header
    struct.pack_into("<H", data, data.find(b"PK\x01\x02") + 8, 0x1)  # and the central one
    refused(tmp_path, bytes(data), ".zip", "an encrypted file")
    data = bytearray(zip_bytes({"odd.bin": b"odd"}, compression=zipfile.ZIP_STORED))
    struct.pack_into("<H", data, 8, 99)  # method 99 (AES) in the local header
    struct.pack_into("<H", data, data.find(b"PK\x01\x02") + 10, 99)  # and the central one
    refused(tmp_path, bytes(data), ".zip", "method 99")


@pytest.mark.parametrize("make,suffix", [
    (lambda: zip_bytes({"a.bin": NOISE})[:30_000], ".zip"),
    (lambda: b"this is not an archive", ".zip"),
    (lambda: b"", ".zip"),
    (lambda: tar_bytes([(member("a.bin"), NOISE)], "w:gz")[:30_000], ".tar.gz"),
])
def test_truncated_or_fake_archives_are_refused(tmp_path, make, suffix):
    message = refused(tmp_path, make(), suffix, "cannot be read whole")
    assert "download it again" in message


def test_tar_cut_between_two_members_is_not_whole(tmp_path):
    data = tar_bytes([(member("a.txt"), b"a" * 1000), (member("b.txt"), b"b" * 1000)])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:512 + 1024])  # a.txt's header and data: b.txt is gone
    with tarfile.open(cut) as tf:
        assert tf.getnames() == ["a.txt"]  # tarfile does not notice
    with pytest.raises(ArchiveError, match="before its end-of-archive marker"):
        check_whole(cut)
    refused(tmp_path, cut.read_bytes(), ".tar", "before its end-of-archive marker")
    whole = tmp_path / "whole.tar"
    whole.write_bytes(data)
    check_whole(whole)


def test_archive_kind_trusts_first_bytes_then_names(tmp_path):
    kinds: dict[str, Callable[[], bytes]] = {
        "x.zip": lambda: zip_bytes({"a": b"a"}), "x.bin": lambda: zip_bytes({"a": b"a"}),
        "x.tar": lambda: tar_bytes([(member("a"), b"a")]),
        "x.dat": lambda: tar_bytes([(member("a"), b"a")], "w:gz"),
        "cut.zip": lambda: b"PK\x03\x04 cut short", "x.csv.gz": lambda: gzip.compress(b"a,b\n"),
        "x.csv": lambda: b"a,b\n",
    }
    found = {}
    for name, make in kinds.items():
        (tmp_path / name).write_bytes(make())
        found[name] = archive_kind(tmp_path / name)
    assert found == {"x.zip": "zip", "x.bin": "zip", "x.tar": "tar", "x.dat": "tar",
                     "cut.zip": "zip", "x.csv.gz": "compressed", "x.csv": None}


def test_a_good_archive_extracts_whole(tmp_path):
    data = tar_bytes([(member("d", tarfile.DIRTYPE), None), (member("d/a.txt"), b"a" * 3000),
                      (member("b.txt"), b"")], mode="w:bz2")
    archive = tmp_path / "ok.tar.bz2"
    archive.write_bytes(data)
    check_whole(archive)
    out = safe_extract(archive, tmp_path / "data" / "ds")
    assert (out / "d" / "a.txt").read_bytes() == b"a" * 3000 and (out / "b.txt").read_bytes() == b""
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["ds"]
    assert arc.is_extracted(archive, out) and not arc.is_extracted(archive, tmp_path)
