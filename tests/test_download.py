"""Downloads against a local HTTP server (127.0.0.1): resuming, verification, truncated
bodies, retries, what is kept or removed, overwrites, and the command's errors and
arguments (one line, exit status 1, no traceback)."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import socket
import tarfile
import threading
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from evacamel.cli import main
from evacamel.dataset import download as dl
from evacamel.dataset.archive import ArchiveError
from evacamel.dataset.download import (RetryPolicy, download_url, fetch, fetch_registered,
                                       make_archive, verify_and_extract)
from evacamel.dataset.registry import REGISTRY, DatasetEntry, RemoteFile, get_entry

pytestmark = pytest.mark.network


def _zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


GOOD = _zip_bytes({"meta.json": b"{}", "fg_bg/img_00000000.jpg": b"x" * 5000,
                   "mask/img_00000000.png": bytes(range(256)) * 40})
NO_SLEEP = RetryPolicy(retries=2, backoff_s=0.0, timeout_s=5.0)


@dataclass
class Route:
    """How the server answers one path."""

    body: bytes = b""
    status: int = 200
    """Anything but 200: answer every request with this error."""
    length: bool = True
    """Send Content-Length (else the body ends when the connection closes)."""
    cuts: int = 0
    """Send only half of the body this many times, then whole bodies."""
    ranges: bool = True
    """Honour Range requests (206); else answer them with the whole body (200)."""
    range_from_zero: bool = False
    """Answer a Range request with a 206 that starts at byte 0 (a broken server)."""
    stall: threading.Event | None = None
    """Send the headers, then wait for this event before the body."""


class Server:
    """A local HTTP/1.0 server of ``routes`` (path -> Route); ``log`` holds (path, Range)."""

    def __init__(self, routes: dict[str, Route]):
        self.routes, self.log = routes, []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                       kwargs={"poll_interval": 0.02})  # quick shutdown

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.log.append((self.path, self.headers.get("Range")))
                route = server.routes.get(self.path)
                if route is None or route.status != 200:
                    self.send_error(404 if route is None else route.status)
                    return
                server.answer(self, route)

        return Handler

    def answer(self, handler: BaseHTTPRequestHandler, route: Route) -> None:
        data, start = route.body, 0
        rng = handler.headers.get("Range")
        if rng and route.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                handler.send_error(416)
                return
            start = 0 if route.range_from_zero else start
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        if route.length:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if route.stall is not None:
            route.stall.wait(10)
        if route.cuts > 0:
            route.cuts -= 1
            body = body[: len(body) // 2]
        handler.wfile.write(body)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        for route in self.routes.values():
            if route.stall is not None:
                route.stall.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _cli(capsys, *argv: str) -> tuple[int, str]:
    """Run ``evacamel download ARGV``: (exit status, stderr)."""
    status = main(["download", *argv])
    return status, capsys.readouterr().err


def _one_line_error(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evacamel download: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


# -- what works -------------------------------------------------------------------------------

def test_good_archive_downloads_verifies_and_extracts(tmp_path):
    with Server({"/good.zip": Route(GOOD)}) as srv:
        out = fetch(f"{srv.url}/good.zip", tmp_path / "data" / "ds", sha256=_sha(GOOD),
                    progress=False)
    assert (out / "fg_bg" / "img_00000000.jpg").read_bytes() == b"x" * 5000
    assert (tmp_path / "data" / "downloads" / "good.zip").read_bytes() == GOOD
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["downloads", "ds"]


def test_truncated_download_resumes_with_range(tmp_path):
    dest = tmp_path / "good.zip"
    with Server({"/good.zip": Route(GOOD, cuts=1)}) as srv:
        download_url(f"{srv.url}/good.zip", dest, md5=hashlib.md5(GOOD).hexdigest(),
                     retry=NO_SLEEP, progress=False)
        ranges = [r for p, r in srv.log]
    assert dest.read_bytes() == GOOD
    assert ranges == [None, f"bytes={len(GOOD) // 2}-"]
    assert not dest.with_name("good.zip.part").exists()


def test_interrupted_download_resumes_in_a_later_call(tmp_path):
    dest = tmp_path / "good.zip"
    dest.with_name("good.zip.part").write_bytes(GOOD[:1000])  # a run died here
    with Server({"/good.zip": Route(GOOD)}) as srv:
        download_url(f"{srv.url}/good.zip", dest, sha256=_sha(GOOD), progress=False)
        assert srv.log == [("/good.zip", "bytes=1000-")]
    assert dest.read_bytes() == GOOD


def test_retries_wait_longer_each_time_then_give_up_clearly(tmp_path):
    waits = []
    retry = RetryPolicy(retries=5, backoff_s=1.0, sleep=waits.append)
    with Server({"/busy.zip": Route(status=503)}) as srv:
        with pytest.raises(ConnectionError, match=r"after 6 attempts \(HTTP 503 .*try again later"):
            download_url(f"{srv.url}/busy.zip", tmp_path / "b.zip", sha256="0" * 64,
                         retry=retry, progress=False)
        assert len(srv.log) == 6
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert not list(tmp_path.iterdir())  # no empty .part


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
    with pytest.raises(ArchiveError, match="Google Drive id other: md5 mismatch"):
        dl.download_gdrive("other", tmp_path / "x.zip", md5="0" * 32)
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.part").exists()


def test_registry_names_the_seed_archives_unverified(tmp_path):
    entry = get_entry("seed-1024")
    assert not entry.verified
    urls = [f.source for f in entry.files]
    assert "https://eva-final-project-dataset.s3-ap-southeast-2.amazonaws.com/dataset_0.zip" in urls
    assert len([u for u in urls if "/dataset_" in u and u.endswith(".zip")]) == 10
    assert [f.folder for f in entry.files if f.extract] == ["bg_cropped"]
    with pytest.raises(ValueError, match="unverified"):
        fetch_registered("seed-1024", tmp_path / "seed")
    assert not (tmp_path / "seed").exists()
    with pytest.raises(KeyError, match="known"):
        get_entry("nope")


def test_a_shared_dataset_archive_round_trips(tmp_path):
    root = tmp_path / "ds"
    for name, data in {"meta.json": "{}", "fg_bg/img_0.jpg": "jpg", ".work/chunks/0.csv": "w",
                       "packed-64/x.bin": "cache", "notes.txt": "mine"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(data)
    archive, sha = make_archive(root, tmp_path / "share" / "ds.zip", progress=False)
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["fg_bg/img_0.jpg", "meta.json"]  # the dataset only
    out = verify_and_extract(archive, tmp_path / "copy", sha256=sha)
    assert (out / "fg_bg" / "img_0.jpg").read_text() == "jpg"
    tampered = tmp_path / "t.zip"
    tampered.write_bytes(archive.read_bytes()[:-1] + b"!")
    with pytest.raises(ValueError, match="sha256 mismatch"):
        verify_and_extract(tampered, tmp_path / "never", sha256=sha)
    assert not (tmp_path / "never").exists()
    assert sorted(p.name for p in archive.parent.iterdir()) == ["ds.zip"]


# -- truncated bodies are never promoted ---------------------------------------------------

def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


NOISE = random.Random(0).randbytes(40_000)  # does not compress
CUT_BODIES = {  # what a server sends when it cuts a body that had no Content-Length
    "zip cut in half": ("x.zip", _zip_bytes({"a.bin": NOISE, "b.bin": NOISE})[:45_000]),
    "tar.gz cut in half": ("x.tar.gz", _tar({"a.bin": NOISE}, "w:gz")[:20_000]),
    "tar cut between members": ("x.tar", _tar({"a.bin": NOISE, "b.bin": NOISE})[:512 + 40_448]),
    "gzip cut in half": ("x.csv.gz", gzip.compress(NOISE)[:20_000]),
}


@pytest.mark.parametrize("case", list(CUT_BODIES))
def test_archive_cut_short_without_content_length_is_not_kept(tmp_path, capsys, case):
    name, body = CUT_BODIES[case]
    dest = tmp_path / "data" / "ds"
    dest.mkdir(parents=True)
    with Server({f"/{name}": Route(body, length=False)}) as srv:
        status, err = _cli(capsys, f"{srv.url}/{name}", "--allow-unverified",
                           "--dest", str(dest))
    assert status == 1
    _one_line_error(err, f"{srv.url}/{name}", "download it again")
    assert not list(dest.iterdir())
    assert not list((tmp_path / "data" / "downloads").iterdir())  # no file, no .part


def test_body_shorter_than_content_range_total_is_not_kept(tmp_path):
    data = b"sample,split\n" * 4000
    dest = tmp_path / "index.csv"
    dest.with_name("index.csv.part").write_bytes(data[:1000])
    route = Route(data, length=False, cuts=1)  # 206, Content-Range .../52000, half a body
    with Server({"/index.csv": route}) as srv:
        with pytest.raises(ConnectionError, match="rerun the same command to resume"):
            download_url(f"{srv.url}/index.csv", dest, allow_unverified=True,
                         retry=RetryPolicy(retries=0), progress=False)
        assert not dest.exists()
        assert dest.with_name("index.csv.part").read_bytes() == data[:1000 + 25500]
        download_url(f"{srv.url}/index.csv", dest, allow_unverified=True, progress=False)
    assert dest.read_bytes() == data


def test_a_range_answer_from_the_wrong_byte_starts_over(tmp_path):
    data = b"sample,split\n" * 4000
    dest = tmp_path / "index.csv"
    dest.with_name("index.csv.part").write_bytes(data[:1000])
    with Server({"/index.csv": Route(data, range_from_zero=True)}) as srv:
        download_url(f"{srv.url}/index.csv", dest, allow_unverified=True, retry=NO_SLEEP,
                     progress=False)
        assert srv.log == [("/index.csv", "bytes=1000-"), ("/index.csv", None)]
    assert dest.read_bytes() == data


def test_cut_bodies_keep_the_part_only_when_the_server_can_resume_it(tmp_path):
    with Server({"/r.zip": Route(GOOD, cuts=99), "/n.zip": Route(GOOD, cuts=99, ranges=False)}) \
            as srv:
        with pytest.raises(ConnectionError, match="after 3 attempts .*rerun .* to resume"):
            download_url(f"{srv.url}/r.zip", tmp_path / "r.zip", sha256=_sha(GOOD),
                         retry=NO_SLEEP, progress=False)
        with pytest.raises(ConnectionError, match="after 3 attempts") as err:
            download_url(f"{srv.url}/n.zip", tmp_path / "n.zip", sha256=_sha(GOOD),
                         retry=NO_SLEEP, progress=False)
    assert (tmp_path / "r.zip.part").stat().st_size > len(GOOD) // 2  # rerun resumes it
    assert not (tmp_path / "n.zip.part").exists() and "resume" not in str(err.value)


def test_wrong_hash_is_refused_and_nothing_is_kept(tmp_path):
    with Server({"/good.zip": Route(GOOD)}) as srv:
        with pytest.raises(ArchiveError, match=f"{srv.url}/good.zip: sha256 mismatch"):
            fetch(f"{srv.url}/good.zip", tmp_path / "ds", sha256="0" * 64, progress=False)
    assert not (tmp_path / "ds").exists()
    assert not list((tmp_path / "downloads").iterdir())


# -- errors: one line, exit status 1 -------------------------------------------------------

def test_http_500_is_one_clear_line(tmp_path, capsys):
    with Server({"/x.zip": Route(status=500)}) as srv:
        status, err = _cli(capsys, f"{srv.url}/x.zip", "--sha256", "0" * 64, "--retries", "0",
                           "--dest", str(tmp_path / "ds"))
    assert status == 1
    _one_line_error(err, f"{srv.url}/x.zip", "HTTP 500", "try again later")


def test_connection_refused_is_one_clear_line(tmp_path, capsys):
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/x.zip"
        status, err = _cli(capsys, url, "--sha256", "0" * 64, "--retries", "0",
                           "--dest", str(tmp_path / "ds"))
    assert status == 1
    _one_line_error(err, url, "refused", "check the network")


def test_missing_or_forbidden_file_is_final_and_its_part_removed(tmp_path, capsys):
    part = tmp_path / "downloads" / "x.zip.part"
    part.parent.mkdir()
    part.write_bytes(b"stale")
    with Server({"/x.zip": Route(status=403)}) as srv:
        status, err = _cli(capsys, f"{srv.url}/x.zip", "--sha256", "0" * 64,
                           "--dest", str(tmp_path / "ds"))
        assert len(srv.log) == 1  # no retries
    assert status == 1
    _one_line_error(err, "HTTP 403", "check the URL")
    assert not part.exists()
    with Server({}) as srv, pytest.raises(FileNotFoundError, match="404 .*check the URL"):
        download_url(f"{srv.url}/gone.zip", tmp_path / "b.zip", sha256="0" * 64,
                     retry=NO_SLEEP, progress=False)


def test_a_stalled_server_times_out(tmp_path):
    with Server({"/slow.zip": Route(GOOD, stall=threading.Event())}) as srv:
        with pytest.raises(ConnectionError, match="after 1 attempt .*timed out"):
            download_url(f"{srv.url}/slow.zip", tmp_path / "s.zip", sha256=_sha(GOOD),
                         retry=RetryPolicy(retries=0, timeout_s=0.3), progress=False)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_is_one_clear_line_and_keeps_the_part(tmp_path, capsys):
    part = tmp_path / "downloads" / "good.zip.part"
    part.parent.mkdir()
    part.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    with Server({"/good.zip": Route(GOOD)}) as srv:
        status, err = _cli(capsys, f"{srv.url}/good.zip", "--sha256", _sha(GOOD),
                           "--dest", str(tmp_path / "ds"))
        assert len(srv.log) == 1  # a full disk is not retried
    assert status == 1
    _one_line_error(err, "No space left on device", "free some space")
    assert part.is_symlink() and not (tmp_path / "ds").exists()


def test_gdown_failures_are_one_clear_line(tmp_path, capsys, monkeypatch):
    import gdown

    def failing(**kw):
        raise gdown.exceptions.FileURLRetrievalError("Cannot retrieve the public link\nof it")

    monkeypatch.setattr(gdown, "download", failing)
    status, err = _cli(capsys, "gdrive:abc", "--sha256", "0" * 64, "--dest", str(tmp_path / "d"))
    assert status == 1
    _one_line_error(err, "Google Drive id abc", "Anyone with the link")


def test_unverified_downloads_need_consent(tmp_path, capsys):
    with Server({"/good.zip": Route(GOOD)}) as srv:
        with pytest.raises(ValueError, match="unverified"):
            download_url(f"{srv.url}/good.zip", tmp_path / "a.zip", progress=False)
        status, err = _cli(capsys, "seed-1024", "--dest", str(tmp_path / "s"))
        assert status == 1
        _one_line_error(err, "seed-1024", "--allow-unverified")
        download_url(f"{srv.url}/good.zip", tmp_path / "a.zip", progress=False,
                     allow_unverified=True)
    assert (tmp_path / "a.zip").read_bytes() == GOOD


def test_an_archive_bomb_names_the_option_that_allows_it(tmp_path, capsys):
    bomb = _zip_bytes({f"z{i}.bin": bytes(1 << 20) for i in range(20)}, zipfile.ZIP_DEFLATED)
    with Server({"/bomb.zip": Route(bomb)}) as srv:
        args = [f"{srv.url}/bomb.zip", "--sha256", _sha(bomb), "--dest", str(tmp_path / "ds")]
        status, err = _cli(capsys, *args, "--max-bytes", "10M")
        assert status == 1
        _one_line_error(err, "bomb.zip", "--max-bytes")
        status, err = _cli(capsys, *args)
        assert status == 1
        _one_line_error(err, "bomb.zip", "--max-ratio")
        assert not (tmp_path / "ds").exists()
        assert _cli(capsys, *args, "--max-ratio", "2000")[0] == 0
    assert len(list((tmp_path / "ds").iterdir())) == 20


def test_interruption_says_how_to_resume(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("evacamel.commands.download.fetch", interrupted)
    status, err = _cli(capsys, "http://127.0.0.1:9/x.zip", "--sha256", "0" * 64)
    assert status == 130 and "rerun the same command to resume" in err


# -- nothing is overwritten without being asked --------------------------------------------

def test_a_downloaded_file_never_replaces_one_in_dest(tmp_path, capsys):
    dest = tmp_path / "ds"
    dest.mkdir()
    (dest / "meta.json").write_text('{"mine": true}')
    url_args = ["--sha256", _sha(b'{"theirs": 1}'), "--dest", str(dest)]
    with Server({"/meta.json": Route(b'{"theirs": 1}')}) as srv:
        status, err = _cli(capsys, f"{srv.url}/meta.json", *url_args)
        assert status == 1
        _one_line_error(err, str(dest / "meta.json"), "--overwrite")
        assert (dest / "meta.json").read_text() == '{"mine": true}'
        assert _cli(capsys, f"{srv.url}/meta.json", *url_args, "--overwrite")[0] == 0
        assert (dest / "meta.json").read_text() == '{"theirs": 1}'
        assert _cli(capsys, f"{srv.url}/meta.json", *url_args)[0] == 0  # the same: fine
    assert sorted(p.name for p in dest.iterdir()) == ["meta.json"]  # no temporary files


def test_extraction_never_replaces_a_folder_unasked_and_reruns_are_quiet(tmp_path):
    dest = tmp_path / "ds"
    with Server({"/good.zip": Route(GOOD)}) as srv:
        url = f"{srv.url}/good.zip"
        fetch(url, dest, sha256=_sha(GOOD), progress=False)
        (dest / "packed-64").mkdir()  # a cache made later by training
        assert fetch(url, dest, sha256=_sha(GOOD), progress=False) == dest  # a rerun
        assert (dest / "packed-64").is_dir()
        (dest / "meta.json").write_text("changed")
        with pytest.raises(FileExistsError, match="not empty.*--overwrite"):
            fetch(url, dest, sha256=_sha(GOOD), progress=False)
        fetch(url, dest, sha256=_sha(GOOD), progress=False, overwrite=True)
    assert (dest / "meta.json").read_text() == "{}" and not (dest / "packed-64").exists()


def test_registered_dataset_reruns_and_refuses_to_replace(tmp_path, monkeypatch):
    index = b"fg_bg_paths,mask_paths\n"
    with Server({"/bg.zip": Route(GOOD), "/dataset_info.csv": Route(index)}) as srv:
        files = (RemoteFile(f"{srv.url}/bg.zip", "bg.zip", sha256=_sha(GOOD)),
                 RemoteFile(f"{srv.url}/dataset_info.csv", "dataset_info.csv",
                            sha256=_sha(index), extract=False))
        monkeypatch.setitem(REGISTRY, "tiny", DatasetEntry("tiny", "a test", files))
        dest = tmp_path / "tiny"
        for _ in range(2):  # the second run finds everything in place
            assert fetch_registered("tiny", dest, retry=NO_SLEEP, progress=False) == dest
        assert (dest / "bg" / "meta.json").is_file()
        assert (dest / "dataset_info.csv").read_bytes() == index
        (dest / "dataset_info.csv").write_text("edited by hand")
        with pytest.raises(FileExistsError, match="dataset_info.csv: already exists"):
            fetch_registered("tiny", dest, retry=NO_SLEEP, progress=False)
    assert (dest / "dataset_info.csv").read_text() == "edited by hand"


# -- bad arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    ["--max-files", "0"], ["--max-files", "-1"], ["--max-files", "many"],
    ["--max-bytes", "0"], ["--max-bytes", "-5"], ["--max-bytes", "inf"],
    ["--max-ratio", "0"], ["--max-ratio", "nan"], ["--retries", "-1"],
    ["--filename", "../x.zip"], ["--filename", "a/b.zip"], ["--filename", ".."],
    ["--filename", "a\\b.zip"], ["--filename", "C:x.zip"],
])
def test_bad_arguments_are_refused_before_anything_happens(tmp_path, capsys, bad):
    with Server({}) as srv:
        with pytest.raises(SystemExit) as exit_:
            main(["download", f"{srv.url}/x.zip", "--sha256", "0" * 64,
                  "--dest", str(tmp_path / "ds"), *bad])
        assert srv.log == []
    assert exit_.value.code == 2 and f"argument {bad[0]}" in capsys.readouterr().err


def test_sizes_take_units(tmp_path):
    from evacamel.cli_args import byte_size

    assert [byte_size(s) for s in ("123", "500M", "20G", "1.5k", "2GiB")] == \
        [123, 500 << 20, 20 << 30, 1536, 2 << 30]


def test_unknown_names_and_unusable_places_are_one_clear_line(tmp_path, capsys):
    status, err = _cli(capsys, "seed-9999")
    assert status == 1
    _one_line_error(err, "'seed-9999'", "seed-1024", "--list")
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    with Server({"/good.zip": Route(GOOD)}) as srv:
        status, err = _cli(capsys, f"{srv.url}/good.zip", "--sha256", _sha(GOOD),
                           "--dest", str(a_file))
        assert status == 1 and srv.log == []  # refused before downloading
        _one_line_error(err, str(a_file), "choose another --dest")
        status, err = _cli(capsys, f"{srv.url}/good.zip", "--sha256", _sha(GOOD),
                           "--dest", str(tmp_path / "ds"), "--downloads", str(a_file / "sub"))
        assert status == 1
        _one_line_error(err, str(a_file))
    assert a_file.read_text() == "not a folder"


def test_list_and_a_good_download_through_the_command(tmp_path, capsys):
    assert main(["download", "--list"]) == 0
    assert "seed-1024" in capsys.readouterr().out
    with Server({"/good.zip": Route(GOOD)}) as srv:
        assert main(["download", f"{srv.url}/good.zip", "--sha256", _sha(GOOD),
                     "--dest", str(tmp_path / "ds")]) == 0
    assert (tmp_path / "ds" / "meta.json").is_file()
