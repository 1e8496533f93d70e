"""Open every page of the built book in headless Chromium and check what a reader sees.

Run by ``make browser-check`` after ``make book`` (CI does both). For each page in
``book/_toc.yml``: the page loads; no image is broken; no figure in a cell output is
empty (a blank canvas); no Python traceback is shown; and a screenshot is saved to
``_build/screenshots/<page>.png`` for a maintainer to look at.

The pages are served by a server on 127.0.0.1; a small checker page (served by the same
server, so same-origin) loads each page in an iframe, inspects its DOM and pixels, and
writes a JSON verdict that ``chromium --dump-dom`` hands back.
"""

from __future__ import annotations

import functools
import html
import json
import re
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"

pytestmark = pytest.mark.browser

CHECKER = """<!doctype html><html><body><pre id="verdict">pending</pre>
<iframe id="page" src="%(src)s" width="1280" height="1600"></iframe>
<script>
const frame = document.getElementById('page');
frame.onload = async () => {
  const doc = frame.contentDocument;
  // Only our own images: the book is checked offline, so external badges cannot load.
  const images = Array.from(doc.images).filter(i => i.src.startsWith(location.origin));
  await Promise.all(images.map(i => (i.complete ? null :
      new Promise(r => { i.onload = r; i.onerror = r; }))));
  const broken = images.filter(i => i.naturalWidth === 0).map(i => i.getAttribute('src'));
  const figures = images.filter(i => i.closest('.cell_output, .output') && i.naturalWidth > 0);
  const empty = [];
  for (const img of figures) {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0, sum = 0, sq = 0;
    for (let k = 0; k < px.length; k += 4 * 7) {
      const y = 0.299 * px[k] + 0.587 * px[k + 1] + 0.114 * px[k + 2];
      n++; sum += y; sq += y * y;
    }
    const std = Math.sqrt(Math.max(sq / n - (sum / n) ** 2, 0));
    if (std < 2 || img.naturalWidth < 40 || img.naturalHeight < 40) empty.push(img.getAttribute('src'));
  }
  const outputs = Array.from(doc.querySelectorAll('.cell_output, .output'));
  const tracebacks = doc.querySelectorAll('.traceback').length +
      outputs.filter(o => /Traceback \\(most recent call last\\)/.test(o.innerText)).length;
  document.getElementById('verdict').textContent = JSON.stringify({
      title: doc.title, broken, empty, tracebacks, figures: figures.length,
      text_length: doc.body.innerText.length});
};
</script></body></html>"""


def _chapters() -> list[str]:
    toc = (ROOT / "book" / "_toc.yml").read_text()
    return re.findall(r"(?:root|file):\s*(\S+)", toc)


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlparse(self.path)
        if url.path == "/__check__":
            page = parse_qs(url.query)["page"][0]
            body = (CHECKER % {"src": html.escape("/" + quote(page))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").is_file():
        pytest.fail(f"{HTML} holds no built book: run `make book` first")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(HTML)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.fail("no Chromium found: install it (Debian: apt-get install chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}"]

    def run(*args: str) -> str:
        done = subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=120)
        return done.stdout

    return run


@pytest.mark.parametrize("chapter", _chapters())
def test_chapter_renders_in_a_browser(chapter, server, chromium):
    page = f"{chapter}.html"
    assert (HTML / page).is_file(), f"{page} was not built"
    dom = chromium("--virtual-time-budget=20000", "--dump-dom", f"{server}/__check__?page={quote(page)}")
    found = re.search(r'<pre id="verdict">(.*?)</pre>', dom, re.S)
    assert found, f"the checker page did not run for {page}"
    verdict = json.loads(html.unescape(found.group(1)))
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / (chapter.replace("/", "__") + ".png")
    chromium("--window-size=1280,2400", f"--screenshot={shot}", f"{server}/{quote(page)}")
    assert shot.is_file() and shot.stat().st_size > 10_000, f"no screenshot of {page}"
    assert verdict["text_length"] > 500, f"{page} is nearly empty: {verdict}"
    assert not verdict["broken"], f"{page} has broken images: {verdict['broken']}"
    assert not verdict["empty"], f"{page} has empty figures: {verdict['empty']}"
    assert verdict["tracebacks"] == 0, f"{page} shows a Python traceback"
    if chapter.startswith("notebooks/"):
        assert verdict["figures"] >= 1, f"{page} shows no figure"
