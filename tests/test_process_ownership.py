"""``cli.main`` is a plain function a Python script may call; the ``sciseg`` command (``console_main``) owns its
process. User errors are SciSegError subclasses; anything else is an internal error with its traceback in a
file. Warnings and notes go through the package's logger; the core does not print."""
from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sct_task_sciseg import cli
from sct_task_sciseg.errors import SciSegError, SettingError, UnknownTaskError
from sct_task_sciseg.tasks import get_task

PACKAGE = Path(__file__).resolve().parents[1] / "sct_task_sciseg"

USER_SCRIPT = """
import atexit, os, sys
print("start", os.getpid(), flush=True)
atexit.register(lambda: print("atexit ran", flush=True))
from sct_task_sciseg.cli import main
import signal
before = signal.getsignal(signal.SIGTERM)
status = main()
print("status", status, "GLIBC_TUNABLES" in os.environ, signal.getsignal(signal.SIGTERM) is before, flush=True)
"""


def test_main_called_from_a_script_returns_and_leaves_the_process_alone(tmp_path):
    # a segmentation run (it would restart a command with huge pages) on a missing input: status 1
    r = subprocess.run([sys.executable, "-c", USER_SCRIPT, "-i", str(tmp_path / "missing.nii.gz")],
                       capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                            if k not in ("SCISEG_TUNED_PROCESS", "GLIBC_TUNABLES")})
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["start", "status", "atexit"], (r.stdout, r.stderr)
    assert lines[1] == "status 1 False True"  # not re-executed, handlers untouched, status returned
    assert r.returncode == 0 and "missing.nii.gz" in r.stderr


def test_the_command_entry_points_are_console_main():
    setup = (PACKAGE.parent / "setup.py").read_text()
    assert '"sciseg=sct_task_sciseg.cli:console_main"' in setup
    main_module = ast.parse((PACKAGE / "__main__.py").read_text())
    assert "console_main" in {n.id for n in ast.walk(main_module) if isinstance(n, ast.Name)}


def test_user_errors_are_one_family_and_keep_the_builtin_types():
    with pytest.raises(UnknownTaskError) as info:
        get_task("no_such_task")
    assert isinstance(info.value, KeyError) and isinstance(info.value, SciSegError)
    assert str(info.value).startswith("unknown task 'no_such_task'")  # not KeyError's quoted repr
    from sct_task_sciseg.inference.settings import check_threshold
    with pytest.raises(SettingError) as info:
        check_threshold(1.5)
    assert isinstance(info.value, ValueError)


def test_an_unknown_task_is_a_user_error(capsys):
    assert cli.main(["-install-task", "no_such_task"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sciseg: error: unknown task 'no_such_task'") and "internal error" not in err


def test_anything_else_is_an_internal_error_with_its_traceback_kept(monkeypatch, tmp_path, capsys):
    def broken(models_dir):
        raise KeyError("boom")  # a bug, not a user error

    monkeypatch.setattr(cli, "cmd_list_tasks", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli.main(["-list-tasks"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sciseg: error: internal error KeyError: 'boom'"), err
    kept = list((tmp_path / "sct_task_sciseg-logs").glob("crash-*.txt"))
    assert len(kept) == 1 and str(kept[0]) in err[0]
    text = kept[0].read_text()
    assert "Traceback" in text and "broken" in text and "KeyError: 'boom'" in text


def test_warnings_go_through_the_package_logger(caplog, monkeypatch):
    from sct_task_sciseg.tasks import registry

    class Broken:
        name = "broken_plugin"

        def load(self):
            raise RuntimeError("cannot import")

    monkeypatch.setattr(registry, "_entry_points", lambda: [Broken()])
    with caplog.at_level(logging.WARNING, logger="sct_task_sciseg"):
        tasks = registry.all_tasks()
    assert list(tasks) == ["seg_sc_lesion_t2w_sci"]
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("sct_task_sciseg", "WARNING", "task plugin 'broken_plugin' failed to load: cannot import")]


#: Core modules that write to the terminal on purpose: progress bars and batch lines (owned by the batch), an
#: install's progress lines (``quiet`` turns them off), the commands of the QC report and of the configuration
#: table, the QC folder's warning for a malformed entry, and the logger's console stream.
PRINTS_ALLOWED = {"batch/progress.py", "batch/runner.py", "weights/store.py", "qc/report.py", "qc/folder.py",
                  "environment.py", "log.py"}
ADAPTERS = ("cli/", "sct/", "demo/", "sct_hook.py", "sct_startup/", "__main__.py")


def test_core_modules_do_not_print():
    printing = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ADAPTERS) or rel in PRINTS_ALLOWED:
            continue
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        if any(getattr(c.func, "id", None) == "print" or getattr(c.func, "attr", None) == "write"
               and getattr(getattr(c.func, "value", None), "attr", None) == "stderr" for c in calls):
            printing.append(rel)
    assert printing == []


def test_the_command_prints_warnings_with_its_words(capsys):
    from sct_task_sciseg.log import console_handler, logger
    handler = console_handler(verbose=False)
    try:
        logger.warning("something odd")
        logger.info("a detail")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert capsys.readouterr().err == "warning: something odd\n"
