"""HTTP download of release archives: timeouts, retries with backoff, resume, mirrors, progress, sha256.

The partial file lives beside its destination (``<dest>.part``) with a small JSON sidecar naming the URL it
came from, so a killed or interrupted download resumes with a ``Range`` request where the server supports it.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ..errors import Hint, InstallError
from ..io.hashing import CHUNK


def _env(name: str, default: float) -> float:
    """Tunables (timeouts in s, retries, backoff base in s), read at call time."""
    return float(os.environ.get(name, default))


@dataclass
class Downloaded:
    path: Path
    url: str
    sha256: str
    size: int


class _Permanent(Exception):
    """This URL will not work however often it is retried (404, 403, ...): go to the next mirror."""


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


def _fetch_once(url: str, part: Path, meta: Path, expected_size: Optional[int], quiet: bool,
                session, digest: _Hash) -> None:
    """One attempt: resume ``part`` from ``url`` to the end."""
    import requests

    offset = 0
    if part.exists() and meta.exists():
        try:
            if json.loads(meta.read_text()).get("url") == url:
                offset = part.stat().st_size
        except (OSError, ValueError):
            offset = 0
    if offset == 0:
        part.unlink(missing_ok=True)
        meta.write_text(json.dumps({"url": url}))
    if expected_size is not None and offset == expected_size:
        return
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        resp = session.get(url, stream=True, headers=headers,
                           timeout=(_env("SCISEG_CONNECT_TIMEOUT", 15), _env("SCISEG_READ_TIMEOUT", 60)))
    except requests.exceptions.RequestException as exc:
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
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
        total = resp.headers.get("Content-Length")
        total = int(total) + offset if total is not None else expected_size
        bar = None
        if _show_progress(quiet):
            from tqdm import tqdm
            bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=url.rsplit("/", 1)[-1], leave=False, file=sys.stderr)
        try:
            with open(part, "ab" if resumed else "wb") as f:
                for block in resp.iter_content(1 << 16):
                    f.write(block)
                    digest.update(block)
                    if bar is not None:
                        bar.update(len(block))
        except requests.exceptions.RequestException as exc:
            raise ConnectionError(f"connection broken after {part.stat().st_size} bytes: "
                                  f"{type(exc).__name__}") from exc
        finally:
            if bar is not None:
                bar.close()
        got = part.stat().st_size
        if total is not None and got < total:
            raise ConnectionError(f"body truncated at {got} of {total} bytes")


def download(urls: Sequence[str], dest: Path, *, expected_size: Optional[int] = None,
             quiet: bool = False, retries: Optional[int] = None, backoff: Optional[float] = None,
             log: Callable[[str], None] = lambda s: None,
             verify: Callable[[str, int], Optional[str]] = lambda digest, size: None,
             hint: Optional[Hint] = None) -> Downloaded:
    """Download the first URL of ``urls`` that works into ``dest`` (atomically: ``dest`` appears complete).

    Transient failures (connection errors, 5xx, truncated bodies) are retried ``retries`` times with
    exponential backoff, resuming where the server allows; permanent ones (404, 403) move on to the next
    URL at once; so does a file that ``verify(sha256, size)`` rejects (it returns the reason). Raises
    :class:`InstallError` naming every URL tried when none works, with ``hint``.
    """
    import requests

    retries = int(_env("SCISEG_RETRIES", 3)) if retries is None else retries
    backoff = _env("SCISEG_BACKOFF", 1.0) if backoff is None else backoff
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    failures: List[str] = []
    with requests.Session() as session:
        session.headers["User-Agent"] = "sct_task_sciseg"
        for url in urls:
            hashed = _Hash()
            for attempt in range(retries + 1):
                try:
                    _fetch_once(url, part, meta, expected_size, quiet, session, hashed)
                except _Permanent as exc:
                    failures.append(f"{url}: {exc}")
                    log(f"{url}: {exc}; trying the next source")
                    break
                except (ConnectionError, OSError) as exc:
                    if attempt < retries:
                        delay = backoff * 2 ** attempt
                        log(f"{url}: {exc}; retrying in {delay:.1f} s")
                        time.sleep(delay)
                        continue
                    failures.append(f"{url}: {exc}")
                    break
                size = part.stat().st_size
                hashed.sync(part, size)  # no-op unless the part was completed by an earlier process
                digest = hashed.h.hexdigest()
                problem = verify(digest, size)
                if problem:
                    part.unlink()
                    meta.unlink(missing_ok=True)
                    failures.append(f"{url}: {problem}")
                    log(f"{url}: {problem}; trying the next source")
                    break
                os.replace(part, dest)
                meta.unlink(missing_ok=True)
                return Downloaded(dest, url, digest, size)
    raise InstallError("download failed: " + "; ".join(failures), hint)
