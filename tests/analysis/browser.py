"""A headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`): no driver
package, no port, just the browser binary and the standard library.

    with HeadlessBrowser(find_chromium(), width=1400) as browser:
        page = browser.open("file:///.../report.html")
        page.errors                     # console errors and uncaught exceptions seen while loading
        browser.evaluate("document.documentElement.scrollWidth")

The protocol: NUL-terminated JSON messages, commands read by the browser from fd 3, replies and events
written to fd 4 (https://chromedevtools.github.io/devtools-protocol/).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

# Debian's headless shell first (what CI installs), then full browsers; Playwright's bundle last.
CANDIDATES = ("chromium-headless-shell", "headless_shell", "chromium", "chromium-browser", "google-chrome",
              "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """The path of a Chromium-family browser on this machine, or None."""
    explicit = os.environ.get("PTFT_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    playwright = os.path.expanduser("~/.cache/ms-playwright")
    if os.path.isdir(playwright):
        for root, _dirs, files in sorted(os.walk(playwright)):
            for name in ("headless_shell", "chrome"):
                if name in files and os.access(os.path.join(root, name), os.X_OK):
                    return os.path.join(root, name)
    return None


class BrowserError(RuntimeError):
    """The browser died, or did not answer in time, or answered a command with an error."""


@dataclass
class PageLoad:
    """What happened while a page loaded."""

    errors: list[str] = field(default_factory=list)  # console.error messages, uncaught exceptions, log errors


class HeadlessBrowser:
    """One headless browser process with one page, at a fixed viewport."""

    def __init__(self, executable: str, width: int = 1400, height: int = 900, timeout: float = 60.0) -> None:
        self.executable, self.width, self.height, self.timeout = executable, width, height, timeout
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._session: str | None = None

    def __enter__(self) -> HeadlessBrowser:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        self._profile = tempfile.mkdtemp(prefix="ptft-chromium-")

        def _wire_pipes() -> None:  # in the child: the protocol's fixed descriptors
            # via fresh copies: a pipe end that already is fd 3 or 4 would keep its close-on-exec flag
            ends = os.dup(commands_read), os.dup(replies_write)
            os.dup2(ends[0], 3)
            os.dup2(ends[1], 4)

        args = [self.executable, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
                f"--user-data-dir={self._profile}", f"--window-size={self.width},{self.height}", "about:blank"]
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, preexec_fn=_wire_pipes, close_fds=False)
        os.close(commands_read)
        os.close(replies_write)
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
            self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                      session=False)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._process.poll() is None:
                self._write({"id": self._id(), "method": "Browser.close"})
                self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        finally:
            for fd in (self._commands, self._replies):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self._profile, ignore_errors=True)

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _write(self, message: dict[str, Any]) -> None:
        os.write(self._commands, json.dumps(message).encode() + b"\0")

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from {self.executable} within {self.timeout}s")
            ready, _, _ = select.select([self._replies], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise BrowserError(f"{self.executable} exited (code {self._process.poll()})")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> dict[str, Any]:
        """Send one command and wait for its reply; events that arrive meanwhile are kept."""
        message: dict[str, Any] = {"id": self._id(), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        self._write(message)
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def _wait_for(self, event: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == event for e in self._events):
            self._events.append(self._read(deadline))

    def open(self, url: str) -> PageLoad:
        """Navigate to `url`, wait for its load event, and return the errors seen on the way."""
        self._events.clear()
        self.send("Page.navigate", {"url": url})
        self._wait_for("Page.loadEventFired")
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # laid out
        load = PageLoad()
        for event in self._events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                load.errors.append(details.get("exception", {}).get("description") or details.get("text", "?"))
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                load.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                load.errors.append(params["entry"].get("text", "?"))
        return load

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited); a thrown error raises."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")
