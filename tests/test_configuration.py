"""One table of environment variables (config.py), one module of machine facts (machine.py), and the portable
configuration: checks that need the machine happen where the model loads."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from sct_task_sciseg import environment
from sct_task_sciseg.cli import main
from sct_task_sciseg.cli.parser import build_parser, check_args
from sct_task_sciseg.errors import ConfigError, SciSegError, SettingError
from sct_task_sciseg.machine import cores
from sct_task_sciseg.pipeline import SegmenterConfig

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sct_task_sciseg"


def _sources():
    return {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}


def test_every_variable_the_package_names_is_in_the_table_and_back():
    named = {m for text in _sources().values() for m in re.findall(r"SCISEG_[A-Z_]+[A-Z]", text)}
    table = set(environment.BY_NAME)
    assert named == table, (sorted(named - table), sorted(table - named))
    assert len(environment.VARIABLES) == 19 and all(v.kind in environment.KINDS and v.brief for v in environment.VARIABLES)


def test_only_the_table_reads_the_environment_for_its_variables():
    readers = [name for name, text in _sources().items() if name != "environment.py"
               and re.search(r"environ(?:\.get\(|\[)\s*[\"']SCISEG_", text)]
    assert readers == []


@pytest.mark.parametrize("name, raw, expected", [
    ("SCISEG_RETRIES", "abc", "SCISEG_RETRIES='abc': expected a whole number ≥ 0"),
    ("SCISEG_RETRIES", "2.5", "SCISEG_RETRIES='2.5': expected a whole number ≥ 0"),
    ("SCISEG_BACKOFF", "-1", "SCISEG_BACKOFF='-1': expected a number ≥ 0"),
    ("SCISEG_READ_TIMEOUT", "nan", "SCISEG_READ_TIMEOUT='nan': expected a number ≥ 0"),
    ("SCISEG_CHECK_MEMORY", "maybe", "SCISEG_CHECK_MEMORY='maybe': expected 1 or 0 (also on/off, yes/no, true/false)"),
])
def test_an_invalid_value_is_one_line_naming_the_variable(name, raw, expected):
    with pytest.raises(ConfigError) as info:
        environment.get(name, {name: raw})
    assert str(info.value) == expected
    assert isinstance(info.value, ValueError) and isinstance(info.value, SciSegError)


def test_values_and_defaults():
    env = {"SCISEG_RETRIES": " 5 ", "SCISEG_BACKOFF": "0.25", "SCISEG_CHECK_MEMORY": "off",
           "SCISEG_MAX_MODEL_VOXELS": "1e6", "SCISEG_MODELS_DIR": "~/m", "SCISEG_SCT_HOOK": ""}
    assert environment.get("SCISEG_RETRIES", env) == 5 and environment.get("SCISEG_BACKOFF", env) == 0.25
    assert environment.get("SCISEG_CHECK_MEMORY", env) is False and environment.get("SCISEG_MAX_MODEL_VOXELS", env) == 10 ** 6
    assert environment.get("SCISEG_MODELS_DIR", env) == str(Path.home() / "m")
    assert environment.get("SCISEG_SCT_HOOK", env) is True  # empty: the default
    assert environment.get("SCISEG_LOCK_TIMEOUT", {}) == 3600.0 and environment.get("SCISEG_MAX_MODEL_VOXELS", {}) == 2 ** 27
    assert environment.lenient("SCISEG_SCT_HOOK", {"SCISEG_SCT_HOOK": "garbage"}) is True  # SCT starts regardless


def test_a_bad_download_setting_is_reported_by_the_command(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    monkeypatch.setenv("SCISEG_RETRIES", "abc")
    assert main(["-install-task", "seg_sc_lesion_t2w_sci", "-v", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sciseg: error: SCISEG_RETRIES='abc': expected a whole number ≥ 0"]


def test_readme_table_and_help_come_from_the_table():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- config table: generated from sct_task_sciseg/environment.py -->\n(.*?)\n<!-- end of config",
                      readme, re.S)
    assert block and block.group(1) == environment.markdown_table(), "README table differs: python -m sct_task_sciseg.environment"
    assert environment.epilog() in build_parser().epilog
    assert all(f"\n  {v.name} " in build_parser().epilog for v in environment.VARIABLES)


def test_machine_facts_live_in_one_module():
    facts = ("sched_getaffinity", "/proc/meminfo", "SC_PHYS_PAGES", "/proc/cpuinfo")
    where = sorted({name for name, text in _sources().items() for f in facts if f in text})
    assert where == ["machine.py"]


def test_threads_are_capped_where_the_model_loads():
    many = cores() + 2
    parser = build_parser()
    for scheduler in ("slurm", "tcp://10.0.0.1:8786"):  # the workers may have more cores than this machine
        args = parser.parse_args(["-i", "x.nii.gz", "-threads", str(many), "-scheduler", scheduler])
        check_args(parser, args)
        assert args.threads == many
    for extra in ([], ["-scheduler", "local"]):  # the model loads here
        args = parser.parse_args(["-i", "x.nii.gz", "-threads", str(many), *extra])
        with pytest.raises(SystemExit):
            check_args(parser, args)
    assert SegmenterConfig(threads=many).threads == many  # portable: sent to a worker as is
    with pytest.raises(SettingError, match=f"threads {many}: use 1 to"):
        from sct_task_sciseg.inference.settings import PredictorSettings, resolve
        resolve(PredictorSettings(device="cpu", threads=many))
    with pytest.raises(SettingError):
        SegmenterConfig(threads=0)


def test_no_sciseg_default_inside_generic_functions():
    import dataclasses
    import inspect

    from sct_task_sciseg.pipeline import postprocess
    from sct_task_sciseg.qc import geometry
    for fn, name in ((postprocess.apply, "scheme"), (postprocess.parse_size, "scheme"),
                     (geometry.canonical_scan, "roles")):
        assert inspect.signature(fn).parameters[name].default is inspect.Parameter.empty, fn.__name__
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(geometry.Roles))
    tree = ast.parse((PACKAGE / "pipeline" / "postprocess.py").read_text())
    assert "SCISEG" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
