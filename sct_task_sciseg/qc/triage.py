"""Triage in the QC report: which rows come first, and the measured values shown under a row's flags."""
from __future__ import annotations

import html
import json
from typing import Mapping

from .plausibility import likely_unusable


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def triage_rank(entry: dict, severity: Mapping[str, str]) -> int:
    """0: output likely unusable, 1: a flag a reviewer must check (bad), 2: a warning, 3: no flag."""
    flags = list(entry.get("flags") or [])
    if likely_unusable(flags):
        return 0
    if any(severity.get(f, "warn") == "bad" for f in flags):
        return 1
    return 2 if flags else 3


def checks_line(checks: dict) -> str:
    """The measured plausibility values under the flags: CSA median, pieces, model doubt."""
    if not checks:
        return ""
    parts = []
    if checks.get("csa_median_mm2") is not None:
        parts.append(f"CSA {checks['csa_median_mm2']:g} mm²")
    if checks.get("cord_pieces") is not None:
        parts.append(f"{checks['cord_pieces']} piece{'s' if checks['cord_pieces'] != 1 else ''}")
    doubt = checks.get("uncertain") or {}
    if doubt:
        parts.append("doubt " + ", ".join(f"{k} {100 * float(v):.0f}%" for k, v in doubt.items()))
    title = json.dumps(checks, sort_keys=True)
    return f'<div class="small checks" title="{_e(title)}">{_e(" · ".join(parts))}</div>' if parts else ""
