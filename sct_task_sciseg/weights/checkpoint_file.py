"""Reading nnU-Net checkpoints without running code from them.

A checkpoint is a torch zip file whose ``data.pkl`` is a pickle; a pickle can name any importable callable
(``os.system``) and call it while loading. Here a checkpoint is

1. hashed as it is read and compared with the install record, when one is given (before any unpickling);
2. scanned: every global its pickle names must be one of :data:`PLAIN_GLOBALS`, the plain types nnU-Net's
   trainer saves (tensors and their storages, ``OrderedDict``, ``torch.device``, numpy scalars/arrays of
   its logs); anything else is refused with one line naming the file and the global;
3. loaded with ``torch.load(weights_only=True)`` inside a scoped allow-list of exactly those types
   (torch ≥ 2.5), or, on older torch (SCT 7.3's 2.2), through an unpickler that resolves only those
   globals; either one refuses on its own what the scan would.

The scan needs no torch, so installs check checkpoints even where torch is missing.
"""
from __future__ import annotations

import _compat_pickle
import hashlib
import os
import pickletools
import re
import types
import zipfile
from pathlib import Path
from typing import List, Optional, Type

from ..errors import ModelError, SciSegError
from ..io.hashing import CHUNK

PLAIN_GLOBALS = frozenset({
    "collections.OrderedDict",  # state dicts
    "torch._utils._rebuild_tensor_v2",  # every tensor
    "torch.device",  # init_args["device"] (nnunetv2 ≥ 2.2)
    "_codecs.encode",  # bytes under pickle protocol 2 (numpy scalars' raw values)
    "numpy.dtype",  # numpy scalars in the training log, _best_ema
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
})
_STORAGE = re.compile(r"torch\.[A-Za-z0-9]*Storage")  # typed storages (FloatStorage, BFloat16Storage, …)
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
               "STRING"}
_NO_STACK_EFFECT = {"BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE", "FRAME", "PROTO"}
MAX_PICKLE = 256 << 20  # a data.pkl holds structure only (tensor data lives beside it)


def allowed(name: str) -> bool:
    return name in PLAIN_GLOBALS or bool(_STORAGE.fullmatch(name))


def _fix_name(module: str, name: str, proto: int) -> str:
    """The global the unpickler really imports (Python 2 names are mapped below protocol 3, as pickle does)."""
    if proto < 3:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def pickle_globals(data: bytes) -> List[str]:
    """Every global the pickle ``data`` would import, in order; raises ValueError for one that cannot be
    known without running it (a ``STACK_GLOBAL`` whose operands are not plain strings, extension codes)."""
    found: List[str] = []
    pushed: List[Optional[str]] = []  # what each stack-changing opcode pushed (a string, else None)
    memo: dict = {}
    proto = 0
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name == "PROTO":
            proto = arg
        if name in ("GLOBAL", "INST"):
            module, _, attr = arg.partition(" ")
            found.append(_fix_name(module, attr, proto))
        elif name == "STACK_GLOBAL":
            if len(pushed) < 2 or not all(isinstance(s, str) for s in pushed[-2:]):
                raise ValueError("a global whose name is computed while loading")
            found.append(_fix_name(pushed[-2], pushed[-1], proto))
        elif name.startswith("EXT"):
            raise ValueError(f"a global given by extension code {arg}")
        if name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = pushed[-1] if pushed else None
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            pushed.append(memo.get(arg))
        elif name in _STRING_OPS:
            pushed.append(arg if isinstance(arg, str) else None)
        elif name not in _NO_STACK_EFFECT:
            pushed.append(None)
    return found


def _data_pickle(zf: zipfile.ZipFile) -> zipfile.ZipInfo:
    pickles = [i for i in zf.infolist() if i.filename.endswith("data.pkl") and i.filename.count("/") == 1]
    if len(pickles) != 1:
        raise ValueError("not a torch checkpoint (no single */data.pkl inside)")
    if pickles[0].file_size > MAX_PICKLE:
        raise ValueError(f"its data.pkl claims {pickles[0].file_size} bytes (at most {MAX_PICKLE})")
    return pickles[0]


def scan(fileobj, path: object, error: Type[SciSegError] = ModelError) -> None:
    """Refuse (``error``, one line naming ``path``, a path or a label) a checkpoint whose pickle names a global outside the
    allow-list, or one that is not a torch zip checkpoint."""
    try:
        with zipfile.ZipFile(fileobj) as zf:
            info = _data_pickle(zf)
            with zf.open(info) as f:
                data = f.read(MAX_PICKLE + 1)
        names = pickle_globals(data)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise error(f"{path}: refusing to load this checkpoint: {exc}") from exc
    except Exception as exc:  # a damaged pickle stream: pickletools raises what it meets
        raise error(f"{path}: refusing to load this checkpoint: unreadable pickle ({type(exc).__name__})") \
            from exc
    bad = [n for n in names if not allowed(n)]
    if bad:
        raise error(
            f"{path}: refusing to load this checkpoint: it needs the global {bad[0]}, which is not a plain "
            "type of nnU-Net checkpoints (loading it could run code)")


def _hash_and_scan(path: Path, sha256: Optional[str], error: Type[SciSegError], label: str) -> os.stat_result:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if sha256 is not None:
            h = hashlib.sha256()
            for block in iter(lambda: f.read(CHUNK), b""):
                h.update(block)
            if h.hexdigest() != sha256:
                raise error(f"{label}: checkpoint changed since install (sha256 {h.hexdigest()[:16]}… is not "
                            f"the recorded {sha256[:16]}…); it is not loaded")
            f.seek(0)
        scan(f, label, error)
    return st


# -- torch ---------------------------------------------------------------------------------------------
def _numpy_objects() -> list:
    """The allow-listed numpy objects, as torch's ``safe_globals`` takes them; under numpy 2 also by the
    names numpy 1 pickled them under (``numpy.core.multiarray.*``: checkpoints trained before numpy 2)."""
    import numpy as np

    scalar, reconstruct = np.float64(0).__reduce__()[0], np.arange(1).__reduce__()[0]
    objs: list = [np.dtype, np.ndarray, scalar, reconstruct]
    objs += sorted({type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFD"} - {np.dtype}, key=str)
    objs += [(f, f"numpy.core.multiarray.{f.__name__}") for f in (scalar, reconstruct)
             if f.__module__ != "numpy.core.multiarray"]
    return objs


def _torch_version(torch) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", torch.__version__)[:2])


def weights_only_available(torch) -> bool:
    """True when ``torch.load(weights_only=True)`` takes the allow-list as a scoped ``safe_globals``
    (torch ≥ 2.5; named pairs, needed under numpy 2, from torch 2.6)."""
    if not hasattr(torch.serialization, "safe_globals"):
        return False
    return _torch_version(torch) >= (2, 6) or not any(isinstance(o, tuple) for o in _numpy_objects())


def _restricted_pickle_module():
    import pickle

    class Unpickler(pickle.Unpickler):
        """Resolves only allow-listed globals, and imports exactly the (mapped) name it checked."""

        def find_class(self, module, name):
            full = _fix_name(module, name, 2)
            if not allowed(full):
                raise pickle.UnpicklingError(f"global {full} is not allowed")
            return super().find_class(*full.rsplit(".", 1))

    mod = types.ModuleType("sciseg_restricted_pickle")
    mod.Unpickler = Unpickler
    mod.load = lambda f, **kw: Unpickler(f, **kw).load()
    mod.loads = pickle.loads
    mod.UnpicklingError = pickle.UnpicklingError
    return mod


def torch_load(path: Path, restricted: Optional[bool] = None):
    """``torch.load`` of ``path`` on the CPU, resolving only allow-listed globals (no scan, no hash: use
    :func:`read_checkpoint`); memory-mapped where torch can."""
    import inspect

    import torch

    kwargs = {"map_location": torch.device("cpu")}
    if "mmap" in inspect.signature(torch.load).parameters:
        kwargs["mmap"] = True  # optimizer state is never read: do not page it in
    restricted = not weights_only_available(torch) if restricted is None else restricted
    if restricted:
        kwargs.update(weights_only=False, pickle_module=_restricted_pickle_module())
        return torch.load(str(path), **kwargs)
    with torch.serialization.safe_globals(_numpy_objects()):
        return torch.load(str(path), weights_only=True, **kwargs)


def read_checkpoint(path: Path, sha256: Optional[str] = None, error: Type[SciSegError] = ModelError,
                    label: Optional[str] = None):
    """The checkpoint object of ``path``: hash checked against ``sha256`` (when given), globals scanned,
    loaded with the restricted loader. Every refusal is one ``error`` line naming the file (as ``label``)."""
    path = Path(path)
    label = label or str(path)
    try:
        before = _hash_and_scan(path, sha256, error, label)
    except OSError as exc:
        raise error(f"{label}: unreadable checkpoint ({exc.strerror or exc})") from exc
    try:
        ck = torch_load(path)
    except Exception as exc:  # torch raises many types for a damaged or refused file
        text = str(exc).strip().splitlines()
        detail = next((ln for ln in text if "global" in ln.lower()), text[-1] if text else "")
        raise error(f"{label}: unreadable checkpoint ({type(exc).__name__}: {detail.strip()[:300]})") from exc
    after = os.stat(path)
    if (after.st_ino, after.st_dev, after.st_size, after.st_mtime_ns) != \
            (before.st_ino, before.st_dev, before.st_size, before.st_mtime_ns):
        raise error(f"{label}: checkpoint replaced while it was being loaded; it is not used")
    return ck
