"""Run SCT's own ``sct_analyze_lesion`` on several mask pairs and print its ``measures`` sheets as JSON.

Runs inside SCT's Python (``/work/sct-envs/7.3/bin/python benchmarks/sct_analyze_lesion_driver.py CASES.json [N]``,
N cases at a time),
where CASES.json is ``[{"name", "lesion", "cord", "out", "args"?}, ...]`` (``args``: more options, e.g. ``-f``). Each case runs as SCT's console script does
(``python -m spinalcordtoolbox.scripts.sct_analyze_lesion -m … -s … -ofolder …``, one process per case, timed),
then the pickle SCT writes beside its .xlsx is read back. A crash is reported with its last line of stderr.
Nothing of SCT is copied here: this only calls it.
"""
import json
import math
import os
import pickle
import re
import subprocess
import sys
import time


def run(case):
    os.makedirs(case["out"], exist_ok=True)
    cmd = [sys.executable, "-m", "spinalcordtoolbox.scripts.sct_analyze_lesion", "-m", case["lesion"],
           "-s", case["cord"], "-ofolder", case["out"], "-v", "0", *case.get("args", [])]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=case["out"])
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stdout + "\n" + proc.stderr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln)]
        return {"name": case["name"], "seconds": seconds,
                "error": (errors or lines or [f"exit {proc.returncode}"])[-1]}
    stem = os.path.basename(case["lesion"]).replace(".nii.gz", "").replace(".nii", "")
    with open(os.path.join(case["out"], stem + "_analysis.pkl"), "rb") as fh:
        sheets = pickle.load(fh)
    def records(frame):
        return [{str(k): (None if isinstance(v, float) and math.isnan(v) else
                          (v.item() if hasattr(v, "item") else v)) for k, v in rec.items()}
                for rec in frame.to_dict(orient="records")]

    return {"name": case["name"], "seconds": seconds, "rows": records(sheets["measures"]),
            "sheets": {name: records(frame) for name, frame in sheets.items() if name != "measures"},
            "columns": {name: [str(c) for c in frame.columns] for name, frame in sheets.items()}}


if __name__ == "__main__":
    from concurrent.futures import ThreadPoolExecutor

    with open(sys.argv[1]) as fh:
        cases = json.load(fh)
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        print(json.dumps(list(pool.map(run, cases))))
