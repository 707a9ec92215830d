"""Image I/O and geometry: NIfTI checks, atomic writes, output naming, orientation, connected components.

Depends on :mod:`sct_task_sciseg.errors` only (numpy, scipy and nibabel for the images).
"""
