"""Downloads against a local HTTP server (127.0.0.1), verification, and safe extraction."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from evacamel.dataset import download as dl
from evacamel.dataset.download import (ExtractLimits, check_archive, download_url, fetch,
                                    safe_extract, verify_and_extract)
from evacamel.dataset.registry import REGISTRY, get_entry

pytestmark = pytest.mark.network


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


GOOD = _zip_bytes({"meta.json": b"{}", "fg_bg/img_00000000.jpg": b"x" * 5000,
                   "mask/img_00000000.png": bytes(range(256)) * 40})


class _Server:
    """Serves ``files`` (path -> bytes) with Range support; ``truncate`` paths send only
    half of the body the first time (Content-Length stays the full size)."""

    def __init__(self, files: dict[str, bytes], truncate: set[str] = frozenset()):
        self.files, self.truncate, self.log = files, set(truncate), []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.log.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.truncate:
                    server.truncate.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_good_archive_downloads_verifies_and_extracts(tmp_path):
    with _Server({"/good.zip": GOOD}) as srv:
        out = fetch(f"{srv.url}/good.zip", tmp_path / "data" / "ds", sha256=_sha(GOOD),
                    progress=False)
    assert (out / "fg_bg" / "img_00000000.jpg").read_bytes() == b"x" * 5000
    assert (tmp_path / "data" / "downloads" / "good.zip").read_bytes() == GOOD
    assert not list((tmp_path / "data").glob(".*"))  # no temporary folders left


def test_truncated_download_resumes_with_range(tmp_path):
    dest = tmp_path / "good.zip"
    with _Server({"/good.zip": GOOD}, truncate={"/good.zip"}) as srv:
        download_url(f"{srv.url}/good.zip", dest, md5=hashlib.md5(GOOD).hexdigest(),
                     backoff=0.01, progress=False)
        ranges = [r for p, r in srv.log]
    assert dest.read_bytes() == GOOD
    assert ranges[0] is None and ranges[1] == f"bytes={len(GOOD) // 2}-"
    assert not dest.with_name("good.zip.part").exists()


def test_interrupted_download_resumes_in_a_later_call(tmp_path):
    dest = tmp_path / "good.zip"
    dest.with_name("good.zip.part").write_bytes(GOOD[:1000])  # a run died here
    with _Server({"/good.zip": GOOD}) as srv:
        download_url(f"{srv.url}/good.zip", dest, sha256=_sha(GOOD), progress=False)
        assert srv.log == [("/good.zip", "bytes=1000-")]
    assert dest.read_bytes() == GOOD


def test_wrong_hash_is_refused_and_nothing_is_kept(tmp_path):
    with _Server({"/good.zip": GOOD}) as srv:
        with pytest.raises(ValueError, match="sha256 mismatch"):
            fetch(f"{srv.url}/good.zip", tmp_path / "ds", sha256="0" * 64, progress=False)
    assert not (tmp_path / "ds").exists()
    assert not list((tmp_path / "downloads").glob("good.zip*"))


def test_unverified_needs_explicit_consent_and_missing_file_is_clear(tmp_path):
    with _Server({"/good.zip": GOOD}) as srv:
        with pytest.raises(ValueError, match="unverified"):
            download_url(f"{srv.url}/good.zip", tmp_path / "a.zip", progress=False)
        download_url(f"{srv.url}/good.zip", tmp_path / "a.zip", progress=False,
                     allow_unverified=True)
        with pytest.raises(FileNotFoundError, match="404"):
            download_url(f"{srv.url}/gone.zip", tmp_path / "b.zip", sha256="0" * 64,
                         progress=False, backoff=0.01)


def test_retries_give_up_with_a_clear_error(tmp_path):
    with pytest.raises(ConnectionError, match="after 3 attempts"):
        download_url("http://127.0.0.1:9/nothing.zip", tmp_path / "n.zip", sha256="0" * 64,
                     retries=2, backoff=0.01, timeout=2, progress=False)


def _tar_with(tmp_path: Path, add) -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        add(tf)
    return path


def _symlink(tf):
    info = tarfile.TarInfo("link")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tf.addfile(info)


def _hardlink(tf):
    info = tarfile.TarInfo("hard")
    info.type, info.linkname = tarfile.LNKTYPE, "fine.txt"
    tf.addfile(info)


def _dotdot(tf):
    info = tarfile.TarInfo("../outside.txt")
    info.size = 1
    tf.addfile(info, io.BytesIO(b"!"))


@pytest.mark.parametrize("add,why", [(_symlink, "symlink"), (_hardlink, "hardlink"),
                                     (_dotdot, r"'\.\.'")])
def test_malicious_tar_is_refused_before_anything_is_written(tmp_path, add, why):
    archive = _tar_with(tmp_path, add)
    dest = tmp_path / "data" / "ds"
    with pytest.raises(ValueError, match=why):
        safe_extract(archive, dest)
    assert not dest.exists() and not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


@pytest.mark.parametrize("name,why", [("../../evil.txt", r"'\.\.'"), ("/abs/evil.txt", "absolute"),
                                      ("C:/evil.txt", "absolute"), ("ok/../../x", r"'\.\.'")])
def test_zip_slip_and_absolute_paths_are_refused(tmp_path, name, why):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip_bytes({"fine.txt": b"ok", name: b"pwned"}))
    with pytest.raises(ValueError, match=why):
        safe_extract(archive, tmp_path / "ds")
    assert not (tmp_path / "ds").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_zip_symlink_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    archive = tmp_path / "link.zip"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="symlink"):
        safe_extract(archive, tmp_path / "ds")


def test_absurd_archives_are_refused(tmp_path):
    many = tmp_path / "many.zip"
    many.write_bytes(_zip_bytes({f"f{i}.txt": b"." for i in range(50)}))
    with pytest.raises(ValueError, match="more than 20 files"):
        safe_extract(many, tmp_path / "a", limits=ExtractLimits(max_files=20))
    assert check_archive(many) == (50, 50)
    with pytest.raises(ValueError, match="bytes uncompressed"):
        safe_extract(many, tmp_path / "b", limits=ExtractLimits(max_total_bytes=10))
    bomb = tmp_path / "bomb.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (32 << 20))
    bomb.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="zip bomb"):
        safe_extract(bomb, tmp_path / "c")
    assert not any((tmp_path / d).exists() for d in "abc")


def test_tampered_archive_never_reaches_the_dataset_folder(tmp_path):
    dest = tmp_path / "ds"
    dest.mkdir()
    (dest / "keep.txt").write_text("precious")
    tampered = tmp_path / "t.zip"
    tampered.write_bytes(GOOD[:-30] + b"\0" * 30)
    with pytest.raises(ValueError):
        verify_and_extract(tampered, dest, sha256=_sha(GOOD))
    with pytest.raises(FileExistsError, match="not empty"):
        verify_and_extract(tmp_path / "t.zip", dest, sha256=_sha(tampered.read_bytes()))
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    good = tmp_path / "g.zip"
    good.write_bytes(GOOD)
    verify_and_extract(good, dest, sha256=_sha(GOOD), overwrite=True)
    assert (dest / "meta.json").read_text() == "{}" and not (dest / "keep.txt").exists()


def test_gdrive_goes_through_gdown(tmp_path, monkeypatch):
    import gdown

    calls = []

    def fake_download(id=None, output=None, quiet=False, resume=False, **kw):  # noqa: A002
        calls.append((id, resume))
        Path(output).write_bytes(GOOD)
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    out = fetch("gdrive:abc123", tmp_path / "ds", sha256=_sha(GOOD), filename="ds.zip",
                progress=False)
    assert calls == [("abc123", True)]
    assert (out / "meta.json").is_file()
    with pytest.raises(ValueError, match="mismatch"):
        dl.download_gdrive("other", tmp_path / "x.zip", md5="0" * 32)
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.part").exists()


def test_registry_names_the_seed_archives_unverified(tmp_path):
    entry = get_entry("seed-1024")
    assert not entry.verified
    urls = [f.source for f in entry.files]
    assert "https://eva-final-project-dataset.s3-ap-southeast-2.amazonaws.com/dataset_0.zip" in urls
    assert len([u for u in urls if "/dataset_" in u and u.endswith(".zip")]) == 10
    assert any(u.endswith("bg_cropped.zip") for u in urls)
    with pytest.raises(ValueError, match="unverified"):
        dl.fetch_registered("seed-1024", tmp_path / "seed")
    assert not (tmp_path / "seed").exists()
    with pytest.raises(KeyError, match="known"):
        get_entry("nope")
    assert set(REGISTRY) >= {"seed-1024"}


def test_download_command(tmp_path, capsys):
    from evacamel.cli import main

    assert main(["download", "--list"]) == 0
    assert "seed-1024" in capsys.readouterr().out
    assert main(["download", "seed-1024", "--dest", str(tmp_path / "s")]) == 1
    assert "unverified" in capsys.readouterr().err
    with _Server({"/good.zip": GOOD}) as srv:
        assert main(["download", f"{srv.url}/good.zip", "--sha256", _sha(GOOD),
                     "--dest", str(tmp_path / "ds")]) == 0
    assert (tmp_path / "ds" / "meta.json").is_file()
