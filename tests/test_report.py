"""``report.html`` (experiments.report): self-contained, and rendered by a real headless browser.

The structural checks always run. The browser test drives Chromium through the DevTools
protocol over a pipe (``--remote-debugging-pipe``: no port, no extra package), records console
errors, exceptions, failed loads and every non-``data:`` request, checks that the figures are
decoded and visible and the advice is shown, screenshots the page and prints it to PDF. The
browser is ``$BIDENV_BROWSER`` or the first of :data:`BROWSERS` on the PATH (Debian's
``chromium-headless-shell``, which ``.ci/run`` installs). Without one the test skips, unless
``BIDENV_BROWSER_REQUIRED=1`` (set by ``.ci/run``), where a missing browser fails.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from experiments.cli import main
from experiments.report import REPORT_NAME, write_report

LITE = "bidenv/AutoBiddingLite-v0"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome",
            "google-chrome-stable")


# --------------------------------------------------------------------------------------------
# Structural checks (no browser)
# --------------------------------------------------------------------------------------------
class _Collector(HTMLParser):
    """Tags, every URL-bearing attribute, and the text, of an HTML document."""

    URL_ATTRS = {"src", "href", "srcset", "poster", "data", "action", "background"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.imgs: list[dict] = []
        self.urls: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(attrs)
        for key, value in attrs.items():
            if key in self.URL_ATTRS and value is not None:
                self.urls.append((tag, key, value))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)


def check_report_structure(path: Path, advice: list[str]) -> _Collector:
    """Assert that ``path`` is a self-contained report that holds ``advice``."""
    text = Path(path).read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    doc = _Collector()
    doc.feed(text)
    doc.close()
    assert "script" not in doc.tags and "link" not in doc.tags and "iframe" not in doc.tags
    assert doc.imgs, "no figure in the report"
    for img in doc.imgs:
        src = img.get("src", "")
        assert src.startswith("data:image/png;base64,"), src[:80]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
        assert img.get("alt")
    # No external reference: the only URLs are data: URIs (or in-page anchors).
    for tag, key, value in doc.urls:
        assert value.startswith(("data:", "#")), f"<{tag} {key}={value[:80]!r}>"
    css = "".join(doc.styles)
    assert "url(" not in css and "@import" not in css and "@font-face" not in css
    assert "@media print" in css
    body = " ".join(" ".join(doc.text).split())
    for message in advice:
        assert " ".join(message.split()) in body
    return doc


def test_write_report_is_self_contained(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "line.png")
    plt.close(fig)
    advice = ["raise the budget up to 2,000 <b>(marginal CPA 64 <= 100)</b> & more"]
    table = pd.DataFrame({"budget": [1000.0, 2000.0], "cpa": [71.23456, float("nan")],
                          "strategy": ["pid_cpa", "<script>x</script>"]})
    path = write_report(tmp_path / "out", title="T <1>", advice=advice[0],
                        spec={"budgets": [1000, 2000], "note": "</pre><script>"}, seed=7,
                        tables={"t.csv": table}, figures=[tmp_path / "line.png"])
    assert path == tmp_path / "out" / REPORT_NAME
    assert sorted(p.name for p in path.parent.iterdir()) == [REPORT_NAME]  # atomic, no leftovers
    doc = check_report_structure(path, advice)
    text = " ".join(doc.text)
    assert "seed 7" in text and "bidenv " in text and "71.23" in text and "<script>" in text
    assert "T <1>" in text
    (tmp_path / "not.png").write_text("hello")
    with pytest.raises(ValueError, match="not a PNG"):
        write_report(tmp_path / "out", title="x", advice="a", spec={}, seed=0, tables={},
                     figures=[tmp_path / "not.png"])


def test_write_report_cuts_long_tables(tmp_path):
    from experiments import report

    frame = pd.DataFrame({"day": range(report.MAX_ROWS + 5)})
    path = write_report(tmp_path, title="x", advice=["a"], spec={}, seed=0,
                        tables={"days.csv": frame}, figures=[])
    text = path.read_text()
    assert f"First {report.MAX_ROWS} of {report.MAX_ROWS + 5} rows" in text
    assert text.count("<tr>") == report.MAX_ROWS + 1


@pytest.fixture(scope="module")
def simulated_report(tmp_path_factory):
    """``bidenv simulate-budget --report`` on a small Lite campaign: (report path, advice)."""
    out = tmp_path_factory.mktemp("budget")
    assert main(["simulate-budget", "--budgets", "200,400", "--target", "100", "--days", "2",
                 "--strategies", "pid_cpa,pid_budget", "--env", LITE, "--seed", "3",
                 "--out", str(out), "--report"]) == 0
    advice = pd.read_csv(out / "recommendation.csv")["message"].tolist()
    return out / REPORT_NAME, advice


def test_simulate_budget_report_structure(simulated_report):
    path, advice = simulated_report
    assert not list(path.parent.glob(".*"))  # no temporary files left behind
    doc = check_report_structure(path, advice)
    assert [img["alt"] for img in doc.imgs] == ["roi_curve", "marginal_cpa", "cpa_vs_budget",
                                                "budget_used", "pacing"]
    text = " ".join(doc.text)
    for name in ("recommendation.csv", "budget_simulation.csv", "days.csv", "seed 3",
                 '"strategies": [', "AutoBiddingLite-v0"):
        assert name in text, name


# --------------------------------------------------------------------------------------------
# A real headless browser
# --------------------------------------------------------------------------------------------
def find_browser() -> str | None:
    """The Chromium to use: ``$BIDENV_BROWSER`` or the first of :data:`BROWSERS` found."""
    if os.environ.get("BIDENV_BROWSER"):
        return shutil.which(os.environ["BIDENV_BROWSER"])
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser_path():
    path = find_browser()
    if path is None:
        wanted = os.environ.get("BIDENV_BROWSER")
        where = (f"BIDENV_BROWSER={wanted!r} is not an executable" if wanted else
                 f"none of {', '.join(BROWSERS)} is on the PATH")
        reason = (f"no headless Chromium: {where} (Debian: apt-get install "
                  f"chromium-headless-shell)")
        if os.environ.get("BIDENV_BROWSER_REQUIRED") == "1":
            pytest.fail(f"BIDENV_BROWSER_REQUIRED=1 but {reason}")
        pytest.skip(reason)
    return path


class Chromium:
    """A headless Chromium driven through the DevTools protocol over a pipe (fds 3 and 4)."""

    def __init__(self, path: str, profile: Path, timeout: float = 30.0):
        self.timeout = timeout
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # The child's ends get numbers above 4 (so dup2 onto 3 and 4 cannot clash) and
        # close-on-exec; close_fds must stay False, or it would close 3 and 4 after _fds.
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)

        def _fds():  # runs in the child between fork and exec
            os.dup2(child_r, 3, inheritable=True)
            os.dup2(child_w, 4, inheritable=True)

        args = [path, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--hide-scrollbars", "--mute-audio",
                f"--user-data-dir={profile}", "--window-size=1280,1000", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=_fds, close_fds=False)
        os.close(child_r)
        os.close(child_w)
        self._write, self._read = to_browser_w, from_browser_r
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def close(self):
        for fd in (self._write, self._read):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("no answer from the browser")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError(f"the browser exited: {self.proc.stderr.read()[-2000:]!r}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Call ``method``; events that arrive meanwhile go to :attr:`events`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> dict:
        deadline = time.monotonic() + self.timeout
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        while True:
            event = self._message(deadline)
            self.events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event

    def open(self, url: str) -> str:
        """A new tab at ``url``, loaded; returns its session id."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target,
                                                      "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        return session

    def evaluate(self, expression: str, session: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def problems(self, session: str) -> list[str]:
        """Console errors, uncaught exceptions, failed loads and non-local requests so far."""
        found = []
        for event in self.events:
            if event.get("sessionId") != session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                                "assert"):
                args = [a.get("value", a.get("description")) for a in params.get("args", [])]
                found.append(f"console.{params['type']}: {args}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url')}")
            elif method == "Network.loadingFailed":
                found.append(f"load failed: {params.get('errorText')}")
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if not url.startswith(("data:", "file:", "about:")):
                    found.append(f"external request: {url}")
        return found


#: What the page shows: every figure decoded and laid out, the advice's text and size.
VISIBLE = """(() => {
  const shown = el => { const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.width > 50 && r.height > 20 && s.visibility !== 'hidden' && s.display !== 'none'
           && parseFloat(s.opacity) > 0; };
  const advice = document.querySelector('#advice');
  return {
    images: [...document.images].map(img => ({alt: img.alt, complete: img.complete,
      natural: img.naturalWidth, shown: shown(img)})),
    advice: advice ? advice.innerText : null,
    adviceShown: advice ? shown(advice) : false,
    height: document.documentElement.scrollHeight,
  };
})()"""


@pytest.fixture(scope="module")
def chromium(browser_path, tmp_path_factory):
    browser = Chromium(browser_path, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield browser
    finally:
        browser.close()


def _screenshot(browser: Chromium, session: str, path: Path, height: int) -> bytes:
    png = base64.b64decode(browser.send("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}},
        session=session)["data"])
    path.write_bytes(png)
    return png


def test_report_renders_in_a_headless_browser(simulated_report, chromium, tmp_path):
    path, advice = simulated_report
    session = chromium.open(path.resolve().as_uri())
    state = chromium.evaluate(VISIBLE, session)
    assert chromium.problems(session) == []
    assert len(state["images"]) == 5
    for img in state["images"]:
        assert img["complete"] and img["natural"] > 100 and img["shown"], img
    assert state["adviceShown"]
    page_text = " ".join(state["advice"].split())
    for message in advice:
        assert " ".join(message.split()) in page_text
    # A screenshot of the top of the page (advice and first figures) that is not blank.
    png = _screenshot(chromium, session, tmp_path / "report.png", min(state["height"], 1400))
    assert png.startswith(PNG_MAGIC)
    from PIL import Image

    with Image.open(tmp_path / "report.png") as image:
        assert image.width == 1280 and image.height > 500
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50
    if os.environ.get("BIDENV_REPORT_SCREENSHOT"):  # docs/img/report.png
        shutil.copyfile(tmp_path / "report.png", os.environ["BIDENV_REPORT_SCREENSHOT"])
    # Printable: it prints to a multi-page PDF without new problems.
    pdf = base64.b64decode(chromium.send("Page.printToPDF", {"printBackground": False},
                                         session=session)["data"])
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 2
    assert chromium.problems(session) == []


def test_the_browser_check_catches_errors(chromium, tmp_path):
    """The checks above can fail: a page with a console error, an exception, a broken image
    and an external request is reported."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><img src='missing.png'>"
                   "<img src='http://127.0.0.1:9/x.png'>"
                   "<script>console.error('boom'); undefinedFunction();</script></body></html>")
    session = chromium.open(bad.resolve().as_uri())
    text = "\n".join(chromium.problems(session))
    assert "console.error: ['boom']" in text and "exception" in text
    assert "external request: http://127.0.0.1:9/x.png" in text
    assert "load failed" in text
