"""Run by tests/test_trust.py with another Python (SCT's environments): the checkpoint guarantees on that
Python's own torch and numpy. Prints one JSON line.

    python trust_child.py WORK_DIR PAYLOAD_ZIP_URL
"""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

import sct_task_sciseg
from sct_task_sciseg.tasks import SCISEG
from sct_task_sciseg.weights import checkpoint_file as cf

sys.path.insert(0, str(Path(__file__).parent))
from test_trust import Payload, training_checkpoint  # noqa: E402  (the same objects as the parent test)


def main(work: Path, url: str) -> dict:
    work.mkdir(parents=True)
    marker = work / "payload-ran"
    good, bad = work / "good.pth", work / "bad.pth"
    torch.save(training_checkpoint(), str(good))
    torch.save(dict(training_checkpoint(), logging=Payload(marker)), str(bad))
    loaders = {"read_checkpoint": lambda p: cf.read_checkpoint(p),
               "own-unpickler": lambda p: cf.torch_load(p, restricted=True)}
    if cf.weights_only_available(torch):
        loaders["weights-only"] = lambda p: cf.torch_load(p, restricted=False)
    result = {"torch": torch.__version__, "numpy": np.__version__, "package": sct_task_sciseg.__file__,
              "weights_only": cf.weights_only_available(torch), "good": {}, "bad": {}}
    for name, load in loaders.items():
        result["good"][name] = round(float(load(good)["logging"]["mean_fg_dice"][1]), 6)
        try:
            load(bad)
            result["bad"][name] = "LOADED"
        except Exception as exc:  # each loader raises its own type
            result["bad"][name] = str(exc)
    r = subprocess.run([sys.executable, "-m", "sct_task_sciseg", "-install-task", f"{SCISEG.name}@evil",
                        "-custom-url", url], capture_output=True, text=True)
    result["install_rc"] = r.returncode
    result["install_error"] = " | ".join(ln for ln in r.stderr.splitlines() if "error" in ln)
    folder = work / "model"
    with zipfile.ZipFile(SCISEG.demo_release.embedded_path()) as zf:
        zf.extractall(folder)
    ck_path = next(folder.glob("*/fold_1/checkpoint_final.pth"))
    ck = torch.load(str(ck_path), map_location="cpu", weights_only=True)
    ck["init_args"]["note"] = Payload(marker)
    torch.save(ck, str(ck_path))
    from sct_task_sciseg.errors import ModelError
    from sct_task_sciseg.pipeline import Segmenter
    try:
        Segmenter(model_folder=ck_path.parent.parent, quiet=True).load()
        result["segment_error"] = "LOADED"
    except ModelError as exc:
        result["segment_error"] = str(exc)
    result["marker"] = marker.exists()
    return result


if __name__ == "__main__":
    os.environ.setdefault("SCISEG_RETRIES", "0")
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2])))
