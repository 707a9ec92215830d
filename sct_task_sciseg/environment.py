"""Every ``SCISEG_*`` environment variable: its type, default and meaning, and the one parser that reads them.

Each reader asks :func:`get` at call time (a test or a long-lived process may change the environment). An
invalid value is one line naming the variable and what is expected::

    SCISEG_RETRIES='abc': expected a whole number ≥ 0

The README's table of variables and the ``sciseg -h`` epilog are generated from :data:`VARIABLES`
(``python -m sct_task_sciseg.environment`` prints the README table). This module imports only ``os`` and
``math``: the SCT start-up hook reads its switches here too.
"""
import math
import os

#: kind → what a valid value looks like (the second half of an error message)
KINDS = {
    "count": "a whole number ≥ 0",
    "number": "a number ≥ 0",
    "switch": "1 or 0 (also on/off, yes/no, true/false)",
    "path": "a folder path",
    "text": "any text",
    "urls": "one or more base URLs, comma or space separated",
}
_ON = ("1", "on", "yes", "true")
_OFF = ("0", "off", "no", "false")


class Variable:
    """One ``SCISEG_*`` variable: ``kind`` (a key of :data:`KINDS`), ``default`` (None: computed, see the
    description), ``brief`` (the ``-h`` line) and ``description`` (the README line)."""

    __slots__ = ("name", "kind", "default", "brief", "description")

    def __init__(self, name, kind, default, brief, description=""):
        self.name, self.kind, self.default = name, kind, default
        self.brief, self.description = brief, description or brief

    def shown_default(self):
        if self.default is None:
            return "—"
        if self.kind == "switch":
            return "1" if self.default else "0"
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


_V = Variable
VARIABLES = (
    _V("SCISEG_MODELS_DIR", "path", None, "where models are installed (-models-dir overrides it)",
       "where models are installed; default: SCT's `data/deepseg_models` inside SCT, else the user data folder "
       "(`-models-dir` overrides it)"),
    _V("SCISEG_RELEASE_URL", "urls", None, "mirrors replacing the upstream release URL",
       "base URL(s) replacing `https://github.com/ivadomed/model_seg_sci/releases/download`, tried in order "
       "(`{base}/{tag}/{asset}`)"),
    _V("SCISEG_CACHE_DIR", "path", None, "where exported networks (OpenVINO, ONNX) are kept",
       "where exported networks (OpenVINO IR, ONNX; one per model, precision and tile shape) are kept; default: the "
       "user cache folder (`~/.cache/sct_task_sciseg` on Linux); safe to delete"),
    _V("SCISEG_CONNECT_TIMEOUT", "number", 15.0, "seconds to connect to a release server"),
    _V("SCISEG_READ_TIMEOUT", "number", 60.0, "seconds without data before a download attempt is cut"),
    _V("SCISEG_RETRIES", "count", 3, "download retries per URL"),
    _V("SCISEG_BACKOFF", "number", 1.0, "first retry delay in s (doubled each retry)"),
    _V("SCISEG_MAX_DOWNLOAD_MB", "number", 8192.0, "largest download in MiB (when no size is pinned)",
       "largest download in MiB when neither the release nor the server gives its size; a longer one is deleted"),
    _V("SCISEG_MIN_RATE", "number", 1024.0, "slowest transfer in bytes/s before it is cut",
       "a transfer slower than this many bytes/s over `SCISEG_RATE_WINDOW` s is cut and retried"),
    _V("SCISEG_RATE_WINDOW", "number", 60.0, "seconds over which the transfer rate is measured"),
    _V("SCISEG_DOWNLOAD_DEADLINE", "number", 10800.0, "seconds one URL may take, all attempts together"),
    _V("SCISEG_MAX_UNZIPPED_MB", "number", 8192.0, "most MiB a release archive may unpack to"),
    _V("SCISEG_LOCK_TIMEOUT", "number", 3600.0, "seconds an install waits for another install of the task"),
    _V("SCISEG_MAX_MODEL_VOXELS", "count", 2 ** 27, "largest image in voxels, as stored and at the model's "
       "spacing (0: no cap)",
       "largest image in voxels, both as stored and at the model's spacing (2²⁷ ≈ 512³; a 64³ header with 8 mm "
       "voxels is 560 M voxels at SCIsegV2's spacing: hours of tiles); `0` = no cap"),
    _V("SCISEG_CHECK_MEMORY", "switch", True, "0: do not refuse inputs whose estimated memory exceeds the "
       "available memory",
       "refuse an input whose estimated peak memory exceeds the memory available now (Linux `MemAvailable`); "
       "`0` = off"),
    _V("SCISEG_TUNED_PROCESS", "switch", False, "1: the sciseg command does not restart itself with huge pages",
       "set by the `sciseg` command when it restarts itself with glibc's huge pages for large arrays; `1` "
       "before the start: no restart"),
    _V("SCISEG_SCT_HOOK", "switch", True, "0: the SCT start-up hook does nothing for this run"),
    _V("SCISEG_SCT_REPLACE_BUILTIN", "switch", False, "1: SCT's own lesion_sci_t2 also runs this package",
       "inside SCT 7.x, `1` routes SCT's own `lesion_sci_t2` task to this package's model too"),
    _V("SCISEG_SCT_RELEASE", "text", None, "release tag SCT's deepseg task uses (default: the task's default)"),
)
BY_NAME = {v.name: v for v in VARIABLES}


def parse(name, raw):
    """``raw`` (the variable's text) as ``name``'s type; :class:`~sct_task_sciseg.errors.ConfigError` when
    it is not one. Empty text is the default."""
    var = BY_NAME[name]
    text = raw.strip()
    if not text:
        return var.default
    if var.kind in ("path", "text", "urls"):
        return os.path.expanduser(text) if var.kind == "path" else text
    if var.kind == "switch":
        low = text.lower()
        if low in _ON or low in _OFF:
            return low in _ON
    else:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0 and (var.kind == "number" or value.is_integer()):
            return int(value) if var.kind == "count" else value
    from .errors import ConfigError  # here: the start-up hook imports this module, and it stays os-only
    raise ConfigError(f"{name}={raw!r}: expected {KINDS[var.kind]}")


def get(name, environ=None):
    """The value of ``name`` in ``environ`` (default: ``os.environ``), or its default when unset."""
    env = os.environ if environ is None else environ
    return parse(name, env.get(name, ""))


def lenient(name, environ=None):
    """:func:`get` that never raises (its default instead): for code that must not fail, as SCT's start-up."""
    try:
        return get(name, environ)
    except ValueError:  # ConfigError
        return BY_NAME[name].default


def epilog() -> str:
    """The ``sciseg -h`` section listing the variables."""
    width = max(len(v.name) for v in VARIABLES)
    lines = ["environment (python -m sct_task_sciseg.environment: types and defaults):"]
    lines += [f"  {v.name:<{width}}  {v.brief}" for v in VARIABLES]
    return "\n".join(lines)


def markdown_table() -> str:
    """The README's table of variables."""
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{v.name}` | {KINDS[v.kind]} | {v.shown_default()} | {v.description} |" for v in VARIABLES]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
