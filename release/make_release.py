#!/usr/bin/env python
"""Turn an nnU-Net v2 trained-model folder into a reproducible release asset.

    python release/make_release.py MODEL_DIR --tag TAG --asset NAME.zip --out DIR [--repo OWNER/REPO]
                                   [--layout MIRROR_DIR]

``MODEL_DIR`` is the ``nnUNetTrainer*__<plans>__<configuration>/`` folder, or a folder holding exactly one.
Writes into ``DIR``:

- ``NAME.zip``: one root folder (the trainer folder) with ``dataset.json``, ``plans.json`` and
  ``fold_*/checkpoint_final.pth`` (else ``checkpoint_best.pth``), nothing else. Checkpoints are re-saved with
  only what inference reads (``network_weights``, ``trainer_name``, ``init_args``,
  ``inference_allowed_mirroring_axes``, ``current_epoch``): no optimizer, grad-scaler or logging state, and
  only plain types (numpy scalars become Python numbers), so that they load with plain
  ``torch.load(weights_only=True)`` and pass the installer's checkpoint scan (checked before writing). The
  zip is deterministic (sorted members, fixed timestamps and permissions): the same model gives the same sha256.
- ``NAME.zip.sha256`` (``sha256sum`` format), ``manifest.json``, ``RELEASE_NOTES.md``;

and prints the ``gh release create`` command that publishes them. ``--layout MIRROR_DIR`` also copies the zip
(and its ``.sha256``) to ``MIRROR_DIR/TAG/NAME.zip``, the layout a plain HTTP mirror serves
(``<base_url>/<tag>/<asset>``, like GitHub's ``releases/download``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import io
import json
import os
import shlex
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from sct_task_sciseg.io.hashing import sha256_file  # noqa: E402

DEFAULT_REPO = "ivadomed/model_seg_sci"
MODEL_FOLDER_GLOB = "nnUNetTrainer*__*__*"
CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_best.pth")
KEEP_KEYS = ("network_weights", "trainer_name", "init_args", "inference_allowed_mirroring_axes", "current_epoch")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ReleaseError(RuntimeError):
    pass


def _is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "dataset.json").is_file() and (path / "plans.json").is_file()


def find_model_folder(path: Path) -> Path:
    """The trainer folder itself, or the only ``nnUNetTrainer*__*__*`` model folder inside ``path``."""
    path = Path(path)
    if not path.is_dir():
        raise ReleaseError(f"{path}: not a folder")
    if _is_model_folder(path):
        return path
    found = [p for p in sorted(path.glob(MODEL_FOLDER_GLOB)) if _is_model_folder(p)]
    if not found:
        found = [p.parent for p in sorted(path.rglob("plans.json")) if _is_model_folder(p.parent)]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise ReleaseError(f"{path}: {what} nnU-Net model folders (dataset.json + plans.json) found; "
                           "expected exactly one")
    return found[0]


def list_checkpoints(folder: Path) -> List[Path]:
    """One checkpoint per ``fold_*``: ``checkpoint_final.pth``, else ``checkpoint_best.pth``."""
    out = []
    for fold in sorted(p for p in folder.glob("fold_*") if p.is_dir()):
        for name in CHECKPOINT_NAMES:
            if (fold / name).is_file():
                out.append(fold / name)
                break
    if not out:
        raise ReleaseError(f"{folder}: no fold_*/checkpoint_final.pth or checkpoint_best.pth")
    return out


def _share_identical(state: dict) -> dict:
    """Detached CPU tensors; identical ones (same dtype, shape and values) become one shared tensor.

    nnU-Net's state dicts name most weights several times (``decoder.encoder.*``, ``all_modules.*``); a
    checkpoint whose copies were cloned apart stores them several times. Loading copies values into the
    network's own parameters, so sharing changes nothing at inference and keeps the file small.
    """
    import torch

    seen: Dict[tuple, object] = {}
    out = {}
    for key, value in state.items():
        t = value.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        sig = (str(t.dtype), tuple(t.shape), hashlib.sha256(raw).hexdigest())
        out[key] = seen.setdefault(sig, t)
    return out


def _plain(value):
    """``value`` with numpy scalars/arrays turned into Python numbers/lists (containers rebuilt)."""
    if isinstance(value, dict):
        return type(value)((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if type(value).__module__ == "numpy":
        return value.tolist()
    return value


def _check_loadable(data: bytes, path: Path) -> None:
    """Refuse to write a checkpoint that would not load through plain ``torch.load(weights_only=True)`` or
    that the installer's scan would refuse."""
    import torch

    from sct_task_sciseg.weights.checkpoint_file import scan

    try:
        scan(io.BytesIO(data), path)
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # the scan raises SciSegError, torch UnpicklingError and others
        raise ReleaseError(f"{path}: the stripped checkpoint does not load safely ({exc})") from exc


def strip_checkpoint(path: Path) -> Tuple[bytes, dict]:
    """The checkpoint re-saved with only the inference keys, in plain types (deterministic bytes), and its
    metadata. The input is the author's own training output, read with ``weights_only=False``; the output
    loads with ``weights_only=True``."""
    import torch

    checkpoint = torch.load(str(path), map_location="cpu", weights_only=False)
    missing = [k for k in ("network_weights", "trainer_name", "init_args") if k not in checkpoint]
    if missing:
        raise ReleaseError(f"{path}: not an nnU-Net v2 checkpoint (missing {', '.join(missing)})")
    stripped = {}
    for key in KEEP_KEYS:
        if key in checkpoint:
            stripped[key] = _plain(checkpoint[key]) if key != "network_weights" else None
    stripped["network_weights"] = _share_identical(checkpoint["network_weights"])
    buf = io.BytesIO()
    torch.save(stripped, buf)
    _check_loadable(buf.getvalue(), path)
    meta = {
        "trainer_name": stripped["trainer_name"],
        "configuration": stripped["init_args"].get("configuration"),
        "fold": stripped["init_args"].get("fold"),
        "current_epoch": stripped.get("current_epoch"),
        "inference_allowed_mirroring_axes": list(stripped.get("inference_allowed_mirroring_axes") or []),
        # each weight once (nnU-Net's state dicts name most of them two or three times)
        "parameters": int(sum(v.numel() for v in {id(t): t for t in stripped["network_weights"].values()}.values()
                              if v.dtype.is_floating_point)),
        "dropped_keys": sorted(k for k in checkpoint if k not in KEEP_KEYS),
    }
    return buf.getvalue(), meta


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o100644 << 16
    info.create_system = 3  # unix, so the permissions above are honoured everywhere
    return info


def build_zip(folder: Path, zip_path: Path) -> Dict[str, dict]:
    """Write the deterministic release zip of ``folder``; returns {member: {size, sha256, ...}}."""
    folder = find_model_folder(folder)
    root = folder.name
    members: Dict[str, Tuple[bytes, dict]] = {}
    for name in ("dataset.json", "plans.json"):
        members[f"{root}/{name}"] = ((folder / name).read_bytes(), {})
    for ck in list_checkpoints(folder):
        data, meta = strip_checkpoint(ck)
        members[f"{root}/{ck.parent.name}/{ck.name}"] = (data, meta)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_name(zip_path.name + ".part")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name in sorted(members):
            zf.writestr(_zip_info(name), members[name][0], compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(tmp, zip_path)
    return {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **meta}
            for name, (data, meta) in sorted(members.items())}


def _nnunet_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("nnunetv2")
    except Exception:
        return None


def _torch_version() -> Optional[str]:
    try:
        import torch

        return str(torch.__version__)
    except Exception:
        return None


def _created(created: Optional[str]) -> str:
    if created:
        return created
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (_dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc) if epoch
            else _dt.datetime.now(tz=_dt.timezone.utc).replace(microsecond=0))
    return when.isoformat().replace("+00:00", "Z")


def gh_command(tag: str, asset: str, repo: str) -> str:
    return " ".join(shlex.quote(a) for a in (
        "gh", "release", "create", tag, asset, f"{asset}.sha256", "manifest.json",
        "--repo", repo, "--notes-file", "RELEASE_NOTES.md"))


def release_notes(manifest: dict, description: str = "") -> str:
    cfg = manifest.get("plans", {})
    lines = [
        f"# {manifest['tag']}",
        "",
        description or "nnU-Net v2 model release.",
        "",
        f"- Asset: `{manifest['asset']}` ({manifest['size']:,} bytes)",
        f"- sha256: `{manifest['sha256']}`",
        f"- Model folder: `{manifest['model_folder']}` (trainer `{manifest['trainer']}`, configuration "
        f"`{manifest['configuration']}`, folds {manifest['folds']})",
        f"- Labels: `{json.dumps(manifest['labels'])}`, regions_class_order `{manifest['regions_class_order']}`",
        f"- Image orientation: `{manifest['image_orientation']}`",
    ]
    if cfg:
        lines.append(f"- Patch size {cfg.get('patch_size')}, spacing {cfg.get('spacing')} mm")
    lines += [
        f"- Packaged with nnunetv2 {manifest.get('nnunetv2') or 'unknown'} on {manifest['created']}",
        "",
        "Checkpoints hold only what inference needs (no optimizer state). Verify a download with:",
        "",
        "```",
        f"sha256sum -c {manifest['asset']}.sha256",
        "```",
        "",
    ]
    return "\n".join(lines)


def make_release(model_dir: Path, tag: str, asset: str, out_dir: Path, *, repo: str = DEFAULT_REPO,
                 layout: Optional[Path] = None, created: Optional[str] = None, description: str = "",
                 quiet: bool = False) -> dict:
    """Build the release files in ``out_dir``; returns the manifest."""
    if not asset.endswith(".zip") or "/" in asset or "\\" in asset:
        raise ReleaseError(f"asset must be a plain file name ending in .zip, got {asset!r}")
    if not tag or "/" in tag or any(c.isspace() for c in tag):
        raise ReleaseError(f"bad tag {tag!r}")
    folder = find_model_folder(Path(model_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / asset
    members = build_zip(folder, zip_path)
    digest = sha256_file(zip_path)
    size = zip_path.stat().st_size
    (out_dir / f"{asset}.sha256").write_text(f"{digest}  {asset}\n")

    dataset_json = json.loads((folder / "dataset.json").read_text())
    plans = json.loads((folder / "plans.json").read_text())
    ck_meta = [m for n, m in members.items() if n.endswith(".pth")]
    parts = folder.name.split("__")
    configuration = ck_meta[0].get("configuration") or (parts[2] if len(parts) == 3 else None)
    cfg = plans.get("configurations", {}).get(configuration, {}) if configuration else {}
    manifest = {
        "tag": tag,
        "asset": asset,
        "sha256": digest,
        "size": size,
        "model_folder": folder.name,
        "trainer": ck_meta[0].get("trainer_name") or parts[0],
        "plans_name": parts[1] if len(parts) == 3 else plans.get("plans_name"),
        "configuration": configuration,
        "folds": sorted(int(n.split("/")[1].split("_", 1)[1]) for n in members if n.endswith(".pth")
                        and n.split("/")[1].split("_", 1)[1].isdigit()),
        "checkpoints": sorted(n.split("/", 1)[1] for n in members if n.endswith(".pth")),
        "labels": dataset_json.get("labels"),
        "regions_class_order": dataset_json.get("regions_class_order"),
        "image_orientation": dataset_json.get("image_orientation"),
        "channel_names": dataset_json.get("channel_names"),
        "plans": {"patch_size": cfg.get("patch_size"), "spacing": cfg.get("spacing"),
                  "network": cfg.get("UNet_class_name") or cfg.get("architecture", {}).get("network_class_name"),
                  "parameters": ck_meta[0].get("parameters")},
        "nnunetv2": _nnunet_version(),
        "torch": _torch_version(),
        "created": _created(created),
        "repo": repo,
        "members": {n: {"size": m["size"], "sha256": m["sha256"]} for n, m in members.items()},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out_dir / "RELEASE_NOTES.md").write_text(release_notes(manifest, description))
    if layout is not None:
        dest = Path(layout) / tag
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(zip_path, dest / asset)
        shutil.copyfile(out_dir / f"{asset}.sha256", dest / f"{asset}.sha256")
        manifest["layout"] = str(dest / asset)
    if not quiet:
        for name, m in members.items():
            extra = f"  (dropped: {', '.join(m['dropped_keys'])})" if m.get("dropped_keys") else ""
            print(f"  {name}  {m['size']:,} bytes{extra}")
        print(f"{zip_path}  {size:,} bytes  sha256 {digest}")
        if layout is not None:
            print(f"mirror copy: {manifest['layout']}")
        print("publish with:")
        print(f"  cd {shlex.quote(str(out_dir))} && {gh_command(tag, asset, repo)}")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Package an nnU-Net v2 trained-model folder as a release asset.")
    ap.add_argument("model_dir", type=Path, help="nnUNetTrainer*__*__* folder, or a folder holding exactly one")
    ap.add_argument("--tag", required=True, help="release tag, e.g. r20240729")
    ap.add_argument("--asset", required=True, help="zip file name, e.g. model_SCIsegV2_r20240729.zip")
    ap.add_argument("--out", required=True, type=Path, help="output folder")
    ap.add_argument("--repo", default=DEFAULT_REPO, help=f"GitHub OWNER/REPO (default {DEFAULT_REPO})")
    ap.add_argument("--layout", type=Path, default=None, help="also copy the zip to LAYOUT/TAG/ASSET (mirror)")
    ap.add_argument("--created", default=None, help="timestamp for the manifest (default: SOURCE_DATE_EPOCH or now)")
    ap.add_argument("--description", default="", help="first paragraph of the release notes")
    args = ap.parse_args(argv)
    try:
        make_release(args.model_dir, args.tag, args.asset, args.out, repo=args.repo, layout=args.layout,
                     created=args.created, description=args.description)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
