"""``sciseg_analyze_lesion``: lesion morphometrics of any lesion + cord masks, with sct_analyze_lesion's flags.

Writes ``<ofolder>/<lesion>_analysis.csv`` (SCT 7.3's columns first, then this package's), the lesion-id image
``<ofolder>/<lesion>_label.nii.gz``, with ``-f`` the atlas tables (``_lesion_distribution.csv``,
``_ROI_occupied_by_lesion.csv``), SCT's ``<lesion>_analysis.xlsx`` and the sidecar ``<lesion>_analysis.json``,
all or none. Never imports torch.
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
  sciseg_analyze_lesion -m mt1_lesion.nii.gz -s mt1_seg.nii.gz -f label/          # + atlas tables, levels
  sciseg_analyze_lesion -m t2_lesion_seg_soft.nii.gz -s t2_sc_seg.nii.gz -soft-threshold 0.5

the definitions are those of SCT 7.3's sct_analyze_lesion (same masks → same numbers); where SCT stops with an
error (lesion voxels outside the cord, a lesion near the image edge, no lesion) this writes rows that say so.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sciseg_analyze_lesion", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Lesion volume, length, width, damage ratio and midsagittal tissue "
                                            "bridges, as SCT 7.3's sct_analyze_lesion computes them.")
    p.add_argument("-m", required=True, metavar="LESION", help="lesion mask (0 and 1 only; a probability map with -soft-threshold)")
    p.add_argument("-s", metavar="CORD", help="spinal cord mask (0 and 1 only); lesion voxels outside it are "
                   "reported and not analysed. Without it only volumes are computed (as SCT)")
    p.add_argument("-i", metavar="IMAGE", help="image: adds the mean and std of the image in each lesion")
    p.add_argument("-f", metavar="TEMPLATE_FOLDER",
                   help="template registered to the image (sct_warp_template's folder: atlas/, "
                        "template/PAM50_levels.nii.gz): SCT's lesion#N_distribution and ROI_occupied_by_lesion "
                        "tables, level and left/right tract columns")
    p.add_argument("-levels", metavar="LABELLED_CORD",
                   help="cord labelled by level (sct_label_vertebrae's *_labeled.nii.gz): rostral/caudal level, "
                        "levels spanned and level of largest damage of each lesion (default with -f: its "
                        "PAM50_levels)")
    p.add_argument("-level-type", choices=("vertebral", "spinal"),
                   help="what the -levels labels count (default: spinal when the file name says so, else "
                        "vertebral)")
    p.add_argument("-nli-slice", type=int, metavar="N",
                   help="axial slice (input index along S-I) of the neurological level of injury: the "
                        "midsagittal slice is taken there; without lesion the cord A-P diameter there is the "
                        "tissue bridge (as SCT 7.3)")
    p.add_argument("-soft-threshold", type=float, metavar="T",
                   help="-m is a probability map (values in [0, 1], e.g. sciseg -soft 1): lesions are voxels "
                        ">= T; adds soft_volume [mm3] (sum of probabilities). Without it -m must hold only 0 and 1")
    p.add_argument("-xlsx", type=int, choices=(0, 1),
                   help="1: also write SCT's <mask>_analysis.xlsx (sheet measures and the -f sheets); default: "
                        "when openpyxl or xlsxwriter is installed (pip install \"sct_task_sciseg[xlsx]\")")
    p.add_argument("-ofolder", default=".", metavar="DIR", help="output folder (created; default: .)")
    p.add_argument("-perslice", type=int, default=0, choices=(0, 1),
                   help="as SCT 7.3: with -f, one row per axial slice instead of one per vertebral level (SCT's "
                        "per-sagittal-slice bridge columns slice_<n>_..._bridge_width [mm] are always written)")
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


def _refuse_overwrite(args, paths) -> None:
    """An output that would replace an input is refused before anything is written."""
    inputs = {Path(p).expanduser().resolve(): p for p in (args.m, args.s, args.i, args.levels) if p}
    for p in paths.values():
        hit = inputs.get(Path(p).expanduser().resolve())
        if hit is not None:
            raise SciSegError(f"{hit}: the analysis would write {Path(p).name} over this input; choose "
                              "another -ofolder or rename the input")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..analysis import analysis_paths, analyze_lesion_files, write_analysis
    from ..io.atomic import check_writable
    from ..io.naming import strip_nifti_suffix

    from ..analysis.result_files import xlsx_writer

    if args.xlsx is None:
        args.xlsx = int(xlsx_writer() is not None)
    try:
        if args.xlsx and xlsx_writer() is None:
            raise SciSegError("-xlsx 1 needs openpyxl or xlsxwriter: pip install \"sct_task_sciseg[xlsx]\"")
        out = Path(args.ofolder).expanduser()
        base = out / Path(strip_nifti_suffix(Path(args.m).name)).name
        _refuse_overwrite(args, analysis_paths(base, _label_suffix(args.m), sheets=bool(args.f),
                                               xlsx=bool(args.xlsx)))
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SciSegError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
        check_writable(out)
        analysis = analyze_lesion_files(args.m, args.s, args.i, True, atlas_per_slice=bool(args.perslice),
                                        connectivity=args.connectivity,
                                        template=args.f, levels=args.levels, level_type=args.level_type,
                                        nli_slice=args.nli_slice, soft_threshold=args.soft_threshold)
        paths = write_analysis(analysis, base, label_suffix=_label_suffix(args.m), xlsx=bool(args.xlsx))
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
