"""The deliberate public API: what ``sct_task_sciseg`` exports, the Segmenter's explicit signature,
``install("task@tag")``, and no private name imported from another module."""
from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import sct_task_sciseg
from conftest import EMBEDDED_ZIP
from sct_task_sciseg.pipeline import Segmenter, SegmenterConfig
from sct_task_sciseg.tasks import SCISEG

PACKAGE = Path(sct_task_sciseg.__file__).parent


def test_every_public_name_resolves_without_loading_torch():
    code = ("import json, sys, sct_task_sciseg as s; [getattr(s, n) for n in s.__all__]; "
            "print(json.dumps([sorted(s.__all__), 'torch' in sys.modules, 'nnunetv2' in sys.modules]))")
    names, torch, nnunet = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                     check=True).stdout)
    assert {"Segmenter", "install", "get_task", "SciSegError", "InputError", "segment_many"} <= set(names)
    assert not torch and not nnunet
    assert issubclass(sct_task_sciseg.UnknownTaskError, KeyError)
    assert set(sct_task_sciseg.__all__) <= set(dir(sct_task_sciseg))
    with pytest.raises(AttributeError):
        sct_task_sciseg.no_such_name


def test_segmenter_signature_is_explicit():
    params = inspect.signature(Segmenter).parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    assert list(params) == list(SegmenterConfig.names())
    defaults = {f: getattr(SegmenterConfig(), f) for f in SegmenterConfig.names()}
    for name, p in params.items():
        if name != "postprocessing":  # None: the config's PostProcessing()
            assert p.default == defaults[name], name
    with pytest.raises(TypeError, match="thread"):
        Segmenter(thread=2)  # a typo is refused by Python itself


def test_install_takes_task_at_tag(tmp_path):
    model = sct_task_sciseg.install(f"{SCISEG.name}@{SCISEG.demo_release.tag}", models_dir=tmp_path,
                                    source=str(EMBEDDED_ZIP), quiet=True)
    assert model.task_name == SCISEG.name and model.tag == SCISEG.demo_release.tag
    assert (model.model_folder / "plans.json").is_file()
    alias = SCISEG.names[-1]  # an alias and an explicit tag: the same installed model, no network
    again = sct_task_sciseg.install(alias, SCISEG.demo_release.tag, models_dir=tmp_path, quiet=True)
    assert again.sha256 == model.sha256 and again.path == model.path


#: Private names still imported across modules (in parts of the package being reworked elsewhere): the QC
#: drawing helpers and the SCT adapter's entry point. This list only shrinks.
PRIVATE_IMPORTS_LEFT = {
    ("qc.bridges", "_text"), ("qc.stats", "_array3d"), ("qc.stats", "_mask3d"), ("qc.pictures", "_annotate"),
    ("qc.pictures", "_compose"), ("qc.pictures", "_axial_panels"), ("qc.pictures", "_sagittal_panels"),
    ("qc.draw", "_sample_grey"), ("qc.draw", "_thick_axes"), ("sct.__main__", "_main"),
    ("batch.executors", "_Pipeline"),
}


def _private_imports():
    found = set()
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("sct_task_sciseg")):
                found |= {(module, a.name) for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")}
    return found


def test_no_new_private_import_across_modules():
    assert _private_imports() <= PRIVATE_IMPORTS_LEFT, sorted(_private_imports() - PRIVATE_IMPORTS_LEFT)
