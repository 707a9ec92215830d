"""Spinal Cord Toolbox (SCT) adapter: makes ``sct_deepseg`` run this package's tasks.

SCT has no plugin mechanism: its tasks are two dicts in ``spinalcordtoolbox.deepseg.models``, ``MODELS`` (one
entry per weights folder) and ``TASKS`` (one entry per ``sct_deepseg`` task). :func:`register` adds entries
shaped like the running SCT's own (detected by the keys its entries use, never by version strings, since git
installs report ``git-<branch>-<sha>``) and routes SCT's install/up-to-date checks for them through this
package's verified installer. The weights land in SCT's model folder in this package's layout,
``<SCT>/data/deepseg_models/<task>/<tag>/nnUNetTrainer…/``, which is SCT's own layout for the model key
``<task>/<tag>``: SCT and the ``sciseg`` command share one verified copy, and a new pinned release gets a new
key (and folder) instead of replacing the old one in place.

Three ways in, all cheap until SCT actually imports its model registry (no torch, no SCT import here):

* :func:`install_hook` (``sciseg -register-sct``): a ``.pth`` startup hook in SCT's site-packages
  (:mod:`.startup_files`, see :mod:`sct_task_sciseg.sct_hook`), so plain ``sct_deepseg`` knows the task;
* :func:`deepseg_main` (the ``sct_deepseg_sciseg`` command, :mod:`.launcher`): registers, then calls
  ``sct_deepseg``'s ``main()`` in-process, for users who do not want a startup hook;
* :func:`register` (:mod:`.deepseg_models`) from Python, after ``import spinalcordtoolbox.deepseg.models``.

:mod:`.install` is SCT's install/up-to-date check for these models, :mod:`.locate` what is known of the SCT
installed here, :mod:`.spec` the model keys served.

Names: this package's task name ``seg_sc_lesion_t2w_sci`` is SCT 6.x's own name for the same model, so on 6.x
the built-in entry is replaced (the user asked for the verified release by installing this package); SCT 7.x
calls its built-in ``lesion_sci_t2``, which is left alone unless ``replace_builtin=True`` (or
``SCISEG_SCT_REPLACE_BUILTIN=1``) redirects it to this package's model too.
"""
from ..weights.locations import sct_models_dir, sct_root
from .startup_files import PTH_NAME, SctNotFoundError, hook_enabled, hook_path, install_hook, pth_text, uninstall_hook
from .install import install_for_sct, sct_model_ok
from .launcher import deepseg_main
from .locate import sct_cli_style, sct_version, usage_hint
from .deepseg_models import (ENV_RELEASE, ENV_REPLACE, MODELS_MODULE, RESERVED_SUBSTRINGS, Registration, check_name,
                             features, register, registration, unregister)
from .spec import ModelSpec, canonical_url, model_key

__all__ = ["ENV_RELEASE", "ENV_REPLACE", "MODELS_MODULE", "PTH_NAME", "RESERVED_SUBSTRINGS", "ModelSpec",
           "Registration", "SctNotFoundError", "canonical_url", "check_name", "deepseg_main", "features",
           "hook_enabled", "hook_path", "install_for_sct", "install_hook", "model_key", "pth_text", "register",
           "registration", "sct_cli_style", "sct_model_ok", "sct_models_dir", "sct_root", "sct_version",
           "uninstall_hook", "unregister", "usage_hint"]
