"""SCT 7.3's own ``sct_analyze_lesion`` with its options on the same files: ``-f`` (per level and per slice) on
lesions drawn on the shared ``mt/mt1.nii.gz`` with ``mt/label/`` and on the synthetic atlas folder,
``-nli-slice`` with and without lesion, and its xlsx read with pandas next to ours.

Needs an SCT 7.3 environment (``scripts/build_sct_env.sh``) among ``SCISEG_SCT_PYTHON`` / ``SCISEG_SCT_PYTHONS``;
skipped without it."""
from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from conftest import sct_python

REPO = Path(__file__).resolve().parents[1]
SCT_PYTHON = sct_python("7.3")


def _sct_ready() -> bool:
    if SCT_PYTHON is None:
        return False
    probe = subprocess.run([str(SCT_PYTHON), "-c", "import spinalcordtoolbox.scripts.sct_analyze_lesion"],
                           capture_output=True, timeout=300)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _sct_ready(), reason="no SCT 7.3 among SCISEG_SCT_PYTHON / SCISEG_SCT_PYTHONS")


def _bench():
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("compare_analyze_lesion_options",
                                                  REPO / "benchmarks" / "compare_analyze_lesion_options.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_options_agree_with_sct_7_3(tmp_path):
    pytest.importorskip("pandas")
    pytest.importorskip("openpyxl")
    bench = _bench()
    cases = bench.build_cases(tmp_path)
    sct = bench.run_sct(cases, SCT_PYTHON, workers=1)
    seen = set()
    for case in cases:
        result = bench.run_case(case, sct.get(case["name"], {}), tmp_path)
        assert "error" not in result, (case["name"], result.get("error"))
        bad = [c for c in result["measures"] + result["sheets"] if not c[-1]]
        assert not bad, (case["name"], bad[:5])
        assert result["measures"], case["name"]
        if case["option"].startswith("-f"):
            assert result["sheets"] and any(c[0].startswith("ROI_occupied_by_lesion") for c in result["sheets"])
        assert result["xlsx"], (case["name"], result.get("xlsx_detail"))
        seen.add((case["title"].split(",")[0], case["option"].split(" ")[0]))
    assert {("synthetic atlas phantom", "-f"), ("cylinder phantom", "-nli-slice")} <= seen
    if (REPO.parent / "shared" / "data" / "sct_testing_data" / "mt").is_dir():
        assert ("mt1 two lesions", "-f") in seen
