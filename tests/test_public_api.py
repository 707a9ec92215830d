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



def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_uses_across_modules():
    """(module, name) for each private name a module imports from another, or reads off an imported module."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("sct_task_sciseg")):
                found |= {(module, a.name) for a in node.names if _private(a.name)}
                imported |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.asname or a.name.split(".")[0] for a in node.names
                             if a.name.startswith("sct_task_sciseg")}
        found |= {(module, f"{node.value.id}.{node.attr}") for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                  and node.value.id in imported}
    return found


def test_no_private_name_used_across_modules():
    assert not _private_uses_across_modules(), sorted(_private_uses_across_modules())


def test_the_private_name_check_sees_imports_and_attributes(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    (tmp_path / "a.py").write_text("from .b import _hidden\nfrom . import c\nc._inner()\n")
    assert _private_uses_across_modules() == {("a", "_hidden"), ("a", "c._inner")}
