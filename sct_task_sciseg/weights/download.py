"""HTTP download of release archives: timeouts, retries with backoff, resume, mirrors, progress, sha256.

The partial file lives beside its destination (``<dest>.part``) with a small JSON sidecar naming the URL it
came from, so a killed or interrupted download resumes with a ``Range`` request where the server supports it.

A hostile or broken server cannot fill the disk or hang the download: the body is capped at the expected
size (else the announced length, else ``SCISEG_MAX_DOWNLOAD_MB``) and a longer one is removed; a transfer
slower than ``SCISEG_MIN_RATE`` bytes/s over ``SCISEG_RATE_WINDOW`` s is cut, and each URL has an overall
``SCISEG_DOWNLOAD_DEADLINE``; an HTML page served instead of the archive is reported as such.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

from ..environment import get
from ..errors import Hint, InstallError
from ..io.hashing import CHUNK
from .archive import html_problem
from .locations import redact


def _env(name: str, default: float) -> float:
    """Tunables (timeouts in s, retries, backoff base in s), read at call time (``default``: documentation;
    the value when unset is :mod:`sct_task_sciseg.environment`'s)."""
    return float(get(name))


def _deadline_s() -> float:
    """Seconds one URL may take, all attempts together."""
    return _env("SCISEG_DOWNLOAD_DEADLINE", 10800)


@dataclass
class Downloaded:
    path: Path
    url: str
    sha256: str
    size: int


class _Permanent(Exception):
    """This URL will not work however often it is retried (404, 403, ...): go to the next mirror."""


class _Oversize(_Permanent):
    """The body is longer than it may be: the part file is removed."""


def _cut(resp) -> None:
    """Shut the response's socket down, so that a read blocked in another thread returns at once."""
    for chain in (("_fp", "fp", "raw", "_sock"), ("connection", "sock"), ("_connection", "sock")):
        obj = getattr(resp, "raw", None)
        for attr in chain:
            obj = getattr(obj, attr, None)
        if isinstance(obj, socket.socket):
            try:
                obj.shutdown(socket.SHUT_RDWR)
                return
            except OSError:
                pass
    resp.close()


class _Watchdog:
    """Cuts a transfer that is too slow (under ``SCISEG_MIN_RATE`` bytes/s over the last
    ``SCISEG_RATE_WINDOW`` s) or runs past ``deadline`` (a ``time.monotonic`` value)."""

    def __init__(self, resp, deadline: float):
        self.resp, self.deadline = resp, deadline
        self.rate, self.window = _env("SCISEG_MIN_RATE", 1024), _env("SCISEG_RATE_WINDOW", 60)
        self.received, self.reason, self.permanent = 0, None, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "_Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        samples = collections.deque([(time.monotonic(), 0)])
        while not self._stop.wait(min(1.0, self.window / 4)):
            t, got = time.monotonic(), self.received
            samples.append((t, got))
            while len(samples) > 1 and samples[1][0] <= t - self.window:
                samples.popleft()
            if t >= self.deadline:
                self.permanent = True
                self.reason = f"no complete download within {_deadline_s():g} s (SCISEG_DOWNLOAD_DEADLINE)"
            elif samples[0][0] <= t - self.window and got - samples[0][1] < self.rate * self.window:
                self.reason = (f"too slow: {got - samples[0][1]} bytes in the last {self.window:g} s "
                               f"(minimum {self.rate:g} bytes/s, SCISEG_MIN_RATE)")
            if self.reason:
                _cut(self.resp)
                return


def _body_limit(expected_size: Optional[int], announced: Optional[int], origin: str = ""):
    """(most bytes the body may have, what that limit is)."""
    if expected_size is not None:
        return expected_size, f"the expected {expected_size} bytes" + (f" ({origin})" if origin else "")
    if announced is not None:
        return announced, f"the announced length of {announced} bytes"
    cap = int(_env("SCISEG_MAX_DOWNLOAD_MB", 8192) * (1 << 20))
    return cap, f"{cap} bytes (SCISEG_MAX_DOWNLOAD_MB)"


def _show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


class _Hash:
    """sha256 of the part file, computed while it is written (re-read only when resuming a foreign part)."""

    def __init__(self):
        self.h, self.n = hashlib.sha256(), 0

    def sync(self, part: Path, offset: int) -> None:
        if self.n != offset:
            self.h, self.n = hashlib.sha256(), 0
            if offset:
                with open(part, "rb") as f:
                    for block in iter(lambda: f.read(CHUNK), b""):
                        self.update(block)

    def update(self, block: bytes) -> None:
        self.h.update(block)
        self.n += len(block)


def short_reason(exc: BaseException, url: str) -> str:
    """A request failure in a few words (urllib3's messages repeat the URL and run to ~450 characters)."""
    import requests
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or url
    text = repr(exc)
    if "NameResolutionError" in text or "Name or service not known" in text or "getaddrinfo" in text:
        return f"cannot resolve {host} (no network, or no DNS)"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"connecting to {host} timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"{host} stopped sending (read timed out)"
    if "Connection refused" in text:
        return f"{host} refused the connection"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error with {host}"
    first = str(exc).split(" (Caused by")[0].split(": ")[-1]
    return f"{type(exc).__name__}: {first[:120]}"


def _fetch_once(url: str, part: Path, meta: Path, expected_size: Optional[int], quiet: bool,
                session, digest: _Hash, deadline: float, size_origin: str = "") -> None:
    """One attempt: resume ``part`` from ``url`` to the end."""
    import requests

    offset = 0
    if part.exists() and meta.exists():
        try:
            if json.loads(meta.read_text()).get("key") == _url_key(url):
                offset = part.stat().st_size
        except (OSError, ValueError):
            offset = 0
    if offset == 0:
        part.unlink(missing_ok=True)
        meta.write_text(json.dumps({"url": redact(url), "key": _url_key(url)}))
    if expected_size is not None and offset == expected_size:
        return
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        resp = session.get(url, stream=True, headers=headers,
                           timeout=(_env("SCISEG_CONNECT_TIMEOUT", 15), _env("SCISEG_READ_TIMEOUT", 60)))
    except requests.exceptions.RequestException as exc:
        reason = short_reason(exc, url)
        if reason.startswith("cannot resolve"):  # no network or no DNS: retrying will not help
            raise _Permanent(reason) from exc
        raise ConnectionError(reason) from exc
    with resp:
        if resp.status_code == 416 and offset:  # already complete, or our part is longer than the file
            part.unlink()
            raise ConnectionError("server rejected the resume range; restarting")
        if resp.status_code in (401, 403, 404, 410):
            raise _Permanent(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise ConnectionError(f"HTTP {resp.status_code}")
        resumed = offset > 0 and resp.status_code == 206
        if offset and not resumed:  # server ignored Range: start over
            offset = 0
        digest.sync(part, offset)
        if "text/html" in resp.headers.get("Content-Type", "").lower():
            raise _Permanent("served an HTML page (Content-Type text/html), not the zip archive: a login, "
                             "error or release web page rather than the asset itself")
        total = resp.headers.get("Content-Length")
        total = int(total) + offset if total is not None else None
        limit, what = _body_limit(expected_size, total, size_origin)
        if total is not None and total > limit:
            raise _Oversize(f"announces {total} bytes, more than {what}")
        total = total if total is not None else expected_size
        _receive(resp, part, offset, resumed, limit, what, digest, deadline, quiet, url, total)
        got = part.stat().st_size
        if total is not None and got < total:
            raise ConnectionError(f"body truncated at {got} of {total} bytes")


def _receive(resp, part: Path, offset: int, resumed: bool, limit: int, what: str, digest: "_Hash",
             deadline: float, quiet: bool, url: str, total: Optional[int]) -> None:
    """Write the body into ``part`` (at most ``limit`` bytes in all), under a watchdog."""
    import requests

    bar = None
    if _show_progress(quiet):
        from tqdm import tqdm
        bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=url.rsplit("/", 1)[-1], leave=False, file=sys.stderr)
    got = offset
    try:
        with _Watchdog(resp, deadline) as dog, open(part, "ab" if resumed else "wb") as f:
            try:
                for block in resp.iter_content(1 << 14):
                    if got + len(block) > limit:
                        raise _Oversize(f"body longer than {what}")
                    f.write(block)
                    digest.update(block)
                    got += len(block)
                    dog.received += len(block)
                    if bar is not None:
                        bar.update(len(block))
            except (requests.exceptions.RequestException, OSError) as exc:
                if dog.reason is None:
                    raise ConnectionError(f"connection broken after {got} bytes: {type(exc).__name__}") from exc
        if dog.reason:
            raise (_Permanent if dog.permanent else ConnectionError)(f"{dog.reason}, after {got} bytes")
    finally:
        if bar is not None:
            bar.close()


def _from_source(url: str, dest: Path, session, retries: int, backoff: float, log: Callable[[str], None],
                 verify: Callable[[str, int], Optional[str]], fetch: dict) -> Union[Downloaded, str]:
    """The download from one source, with its retries: the file, or why this source failed."""
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    hashed = _Hash()
    deadline = time.monotonic() + _deadline_s()
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, meta, fetch["expected_size"], fetch["quiet"], session, hashed, deadline,
                        fetch["size_origin"])
        except _Oversize as exc:
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return str(exc)
        except _Permanent as exc:
            return str(exc)
        except (ConnectionError, OSError) as exc:
            if attempt == retries:
                return str(exc)
            if attempt == 0:  # one line per source, not one per attempt
                log(redact(f"{url}: {exc}; retrying up to {retries} times"))
            time.sleep(backoff * 2 ** attempt)
            continue
        size = part.stat().st_size
        hashed.sync(part, size)  # no-op unless the part was completed by an earlier process
        digest = hashed.h.hexdigest()
        problem = html_problem(part) or verify(digest, size)
        if problem:
            part.unlink()
            meta.unlink(missing_ok=True)
            return problem
        os.replace(part, dest)
        meta.unlink(missing_ok=True)
        return Downloaded(dest, redact(url), digest, size)
    return "no attempt made"


def download(urls: Sequence[str], dest: Path, *, expected_size: Optional[int] = None,
             quiet: bool = False, retries: Optional[int] = None, backoff: Optional[float] = None,
             log: Callable[[str], None] = lambda s: None,
             verify: Callable[[str, int], Optional[str]] = lambda digest, size: None,
             hint: Optional[Hint] = None, size_origin: str = "") -> Downloaded:
    """Download the first URL of ``urls`` that works into ``dest`` (atomically: ``dest`` appears complete).

    Transient failures (connection errors, 5xx, truncated bodies) are retried ``retries`` times with
    exponential backoff, resuming where the server allows; permanent ones (404, 403) move on to the next
    URL at once; so does a file that ``verify(sha256, size)`` rejects (it returns the reason), an HTML page,
    and a body longer than ``expected_size`` (where ``size_origin`` says from where it is known). Raises
    :class:`InstallError` naming every URL tried when none works, with ``hint``.
    """
    import requests

    retries = int(_env("SCISEG_RETRIES", 3)) if retries is None else retries
    backoff = _env("SCISEG_BACKOFF", 1.0) if backoff is None else backoff
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: List[str] = []
    with requests.Session() as session:
        session.headers["User-Agent"] = "sct_task_sciseg"
        for n, url in enumerate(urls, 1):
            got = _from_source(url, dest, session, retries, backoff, log, verify,
                               dict(expected_size=expected_size, quiet=quiet, size_origin=size_origin))
            if isinstance(got, Downloaded):
                return got
            failures.append(redact(f"{url}: {got}"))
            if n < len(urls):  # the last source's failure is the error itself
                log(redact(f"{url}: {got}; trying the next source"))
    raise InstallError("download failed: " + "; ".join(failures), hint)


def _url_key(url: str) -> str:
    """What a partial download records of its URL (a digest: the URL may hold credentials)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()
