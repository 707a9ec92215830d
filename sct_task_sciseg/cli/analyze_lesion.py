"""``sciseg_analyze_lesion``: lesion morphometrics of any lesion + cord masks, with sct_analyze_lesion's flags.

Writes ``<ofolder>/<lesion>_analysis.csv`` (SCT 7.3's columns first, then this package's), the lesion-id image
``<ofolder>/<lesion>_label.nii.gz`` and the sidecar ``<ofolder>/<lesion>_analysis.json``. Never imports torch.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..errors import SciSegError

EPILOG = """\
examples:
  sciseg_analyze_lesion -m t2_lesion_seg.nii.gz -s t2_sc_seg.nii.gz
  sciseg_analyze_lesion -m t2_lesion_seg.nii.gz -s t2_sc_seg.nii.gz -i t2.nii.gz -ofolder results/ -perslice 1

the definitions are those of SCT 7.3's sct_analyze_lesion (same masks → same numbers); where SCT stops with an
error (lesion voxels outside the cord, a lesion near the image edge, no lesion) this writes rows that say so.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sciseg_analyze_lesion", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Lesion volume, length, width, damage ratio and midsagittal tissue "
                                            "bridges, as SCT 7.3's sct_analyze_lesion computes them.")
    p.add_argument("-m", required=True, metavar="LESION", help="lesion mask (non-zero = lesion)")
    p.add_argument("-s", metavar="CORD", help="spinal cord mask (non-zero = cord); lesion voxels outside it are "
                   "reported and not analysed. Without it only volumes are computed (as SCT)")
    p.add_argument("-i", metavar="IMAGE", help="image: adds the mean and std of the image in each lesion")
    p.add_argument("-ofolder", default=".", metavar="DIR", help="output folder (created; default: .)")
    p.add_argument("-perslice", type=int, default=0, choices=(0, 1),
                   help="1: add SCT's per-sagittal-slice bridge columns (slice_<n>_dorsal_bridge_width [mm], ...)")
    p.add_argument("-connectivity", type=int, default=2, choices=(1, 2, 3),
                   help="lesion components: neighbours may differ in 1, 2 (default, SCT's: 18-neighbourhood) "
                        "or 3 coordinates (26-neighbourhood)")
    p.add_argument("-v", type=int, default=1, choices=(0, 1, 2), help="verbosity")
    return p


def _label_suffix(path: str) -> str:
    return ".nii" if path.endswith(".nii") else ".nii.gz"


def _report(analysis, paths) -> None:
    s = analysis.summary
    print(f"lesions: {s['lesion_count']}, total volume {s['total_volume [mm3]']:.2f} mm3"
          + (f", total length {s['total_length [mm]']:.2f} mm" if s.get("total_length [mm]") is not None else "")
          + (f", largest damage ratio {s['max_axial_damage_ratio []']:.3f}"
             if s.get("max_axial_damage_ratio []") is not None else ""))
    if s["voxels_outside_cord"]:
        print(f"warning: {s['voxels_outside_cord']} lesion voxels lie outside the cord mask and were not analysed "
              f"({s['components_outside_cord']} lesion(s) entirely outside)", file=sys.stderr)
    for row in analysis.rows:
        if row.get("note"):
            print(f"  lesion {row['label']}: {row['note']}")
    for p in paths.values():
        print(f"  → {p}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..analysis import analyze_lesion_files, write_analysis
    from ..io.atomic import check_writable
    from ..io.naming import strip_nifti_suffix

    try:
        out = Path(args.ofolder).expanduser()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SciSegError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
        check_writable(out)
        analysis = analyze_lesion_files(args.m, args.s, args.i, bool(args.perslice), connectivity=args.connectivity)
        base = out / Path(strip_nifti_suffix(Path(args.m).name)).name
        paths = write_analysis(analysis, base, label_suffix=_label_suffix(args.m))
    except KeyboardInterrupt:
        print("sciseg_analyze_lesion: error: interrupted; no partial output was left", file=sys.stderr)
        return 130
    except SciSegError as exc:
        print(f"sciseg_analyze_lesion: error: {exc}", file=sys.stderr)
        return 1
    if args.v:
        _report(analysis, paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
