"""Trust on first use: the sha256/size recorded at the first install of a release that pins none."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Optional

from ..io.atomic import atomic_write
from ..tasks import Release

TRUST_FILE = "trusted_sha256.json"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class TrustRecord:
    """The task folder's ``trusted_sha256.json``: release tag → recorded hash, size, URL and date."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def expected(self, release: Release) -> Optional[dict]:
        if release.sha256:
            return {"sha256": release.sha256.lower(), "size": release.size, "origin": "pinned in the task"}
        rec = self.data.get(release.tag)
        if rec and rec.get("asset") == release.asset:
            return {"sha256": rec["sha256"], "size": rec.get("size"),
                    "origin": f"recorded at first install on {rec.get('recorded_at', '?')}"}
        return None

    def record(self, release: Release, sha256: str, size: int, url: str) -> None:
        self.data[release.tag] = {"asset": release.asset, "sha256": sha256, "size": size, "url": url,
                                  "recorded_at": now()}
        atomic_write(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")


def mismatch(expected: Optional[dict], digest: str, size: int, release: Release) -> Optional[str]:
    """Why ``digest``/``size`` is not the expected release, or None."""
    if expected is None:
        return None
    if digest != expected["sha256"] or (expected.get("size") and size != expected["size"]):
        return (f"sha256 {digest[:16]}… (size {size}) does not match {expected['sha256'][:16]}… "
                f"({expected['origin']}); the file is corrupt or not release {release.tag}")
    return None
