"""Quality control: pictures (sagittal and axial mosaics following the cord), numbers and flags per scan, and
an offline HTML report of many scans.

Every automatic lesion mask is checked by eye before anyone trusts a number from it, so each scan gets two
mosaics, each with a plain twin (same pixels, no overlay) for comparison:

* **sagittal**: the mid-sagittal slice and its neighbours, *curved to follow the cord* (for every axial level the
  L/R position is taken from the cord centreline), S up, A on the left;
* **axial**: slices along the cord, each crop centred on the cord, radiological convention (patient's right on
  the viewer's left, A up). Slices are spread evenly along the cord, and every lesion component is guaranteed a
  tile (its largest cross-section, plus its first and last slice while the tile budget allows).

The structure (SCIseg: the cord) is red (``#ff0000``) and the finding (the lesion) cyan (``#00ffff``), SCT's
colours; which output is which comes from the task's label scheme (:class:`Roles`). Work happens in the closest
canonical (RAS) orientation, so any input orientation gives the same pictures. Nothing here imports torch.

Modules: :mod:`.geometry` (canonical scan, centreline, components), :mod:`.stats` (numbers and flags),
:mod:`.panels` (layout), :mod:`.draw` (pixels), :mod:`.pictures` (the PNG files), :mod:`.entry` (``-qc DIR``
for one scan), :mod:`.folder` (the QC folder's entries), :mod:`.index_rows`, :mod:`.lesion_columns` and
:mod:`.report` (the index page).
"""
from .entry import write_qc
from .geometry import Roles, canonical_scan, cord_centreline, lesion_components
from .pictures import Mosaic, render_mosaics, render_qc
from .stats import lesion_stats

__all__ = ["Mosaic", "Roles", "canonical_scan", "cord_centreline", "lesion_components",
           "lesion_stats", "render_mosaics", "render_qc", "write_qc"]
