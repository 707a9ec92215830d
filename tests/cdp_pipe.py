"""A headless Chromium driven through the DevTools protocol over ``--remote-debugging-pipe`` (standard library only).

Chromium reads JSON commands from file descriptor 3 and writes replies and events to descriptor 4, each message
ending in a NUL byte. One page target is attached in flat mode; ``send`` waits for a command's reply, ``event``
for an event of a given method.
"""
from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Callable, List, Optional


class CDPError(RuntimeError):
    pass


class Chromium:
    def __init__(self, exe: str, flags: List[str], profile: str, timeout: float = 30.0):
        self.timeout, self._id, self._replies, self._events = timeout, 0, {}, queue.Queue()
        self._cond = threading.Condition()
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # the child's ends above 4, so that placing them on 3 and 4 cannot overwrite one with the other
        child = [fcntl.fcntl(fd, fcntl.F_DUPFD, 5) for fd in (to_chrome_r, from_chrome_w)]
        for fd in (to_chrome_r, from_chrome_w):
            os.close(fd)
        self._log = tempfile.TemporaryFile()

        def place_pipes():  # in the child, before exec: its ends of the pipes on 3 and 4
            os.dup2(child[0], 3)
            os.dup2(child[1], 4)

        self.proc = subprocess.Popen([exe, *flags, "--remote-debugging-pipe", f"--user-data-dir={profile}",
                                      "about:blank"], pass_fds=(3, 4), preexec_fn=place_pipes,
                                     stdout=self._log, stderr=self._log)
        for fd in child:
            os.close(fd)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", page=True)

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                break
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self._events.put(msg)
        with self._cond:
            self._replies[None] = {"error": {"message": "Chromium closed the pipe"}}
            self._cond.notify_all()

    def send(self, method: str, params: Optional[dict] = None, page: bool = False) -> dict:
        """Run ``method`` (on the page's session when ``page``) and return its result."""
        with self._cond:
            self._id += 1
            mid = self._id
        msg = {"id": mid, "method": method, "params": params or {}}
        if page:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while mid not in self._replies and None not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"{method}: no reply in {self.timeout} s")
                self._cond.wait(left)
            reply = self._replies.pop(mid, None) or self._replies[None]
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def event(self, method: str, match: Callable[[dict], bool] = lambda p: True) -> dict:
        """The parameters of the next event ``method`` whose parameters satisfy ``match`` (others are dropped)."""
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"no {method} event in {self.timeout} s")
            try:
                msg = self._events.get(timeout=left)
            except queue.Empty:
                continue
            if msg.get("method") == method and match(msg.get("params", {})):
                return msg["params"]

    def js(self, expression: str):
        """The value of ``expression`` evaluated in the page (promises awaited)."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                      page=True)
        if "exceptionDetails" in r:
            raise CDPError(f"{expression[:80]}: {r['exceptionDetails'].get('exception', {}).get('description')}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: Optional[float] = None):
        """Poll ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"still false after {timeout or self.timeout} s: {expression}")
            time.sleep(0.05)

    def open(self, url: str, ready: str = "true") -> None:
        """Navigate to ``url`` (the same URL again: a reload), wait for its load event, then until ``ready``."""
        while not self._events.empty():
            self._events.get_nowait()
        self.send("Page.navigate", {"url": url}, page=True)
        self.event("Page.loadEventFired")
        self.wait_for(ready)

    def reload(self, ready: str = "true") -> None:
        while not self._events.empty():
            self._events.get_nowait()
        self.send("Page.reload", {"ignoreCache": True}, page=True)
        self.event("Page.loadEventFired")
        self.wait_for(ready)

    def close(self) -> str:
        """Stop the browser; returns its stderr tail (for failure messages)."""
        try:
            self.send("Browser.close")
        except CDPError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.seek(0)
        err = self._log.read()
        self._log.close()
        os.close(self._to_chrome)
        self._reader.join(timeout=5)
        if not self._reader.is_alive():
            os.close(self._from_chrome)
        return (err or b"").decode(errors="replace")[-800:]


def find_chromium() -> Optional[str]:
    """``$CHROMIUM``, else the first Chromium or Chrome on the PATH."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def open_chromium(folder, flags: List[str]) -> "Chromium":
    """A driven Chromium with a fresh profile under ``folder``; the calling test is skipped, with the reason,
    where no Chromium is installed or it cannot be driven."""
    import pytest

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)")
    try:
        return Chromium(chromium, flags, tempfile.mkdtemp(prefix="profile-", dir=folder))
    except (CDPError, OSError) as exc:
        pytest.skip(f"Chromium cannot be driven here: {exc}")
