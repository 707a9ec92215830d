"""Packaging for sct_task_sciseg."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "sct_task_sciseg" / "__init__.py").read_text()).group(1)

setup(
    name="sct_task_sciseg",
    version=VERSION,
    description="SCIseg (spinal cord + lesion segmentation on T2w MRI) as a verified, fast, "
                "standalone and Spinal Cord Toolbox deepseg task",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["sct_task_sciseg", "sct_task_sciseg.*"]),
    package_data={"sct_task_sciseg": ["data/*.zip", "data/*.json", "qc/assets/*", "sct_startup/sitecustomize.py"]},
    # Nothing here may change what SCT's environment holds: every requirement below is already satisfied by SCT
    # 6.x and 7.x, so a plain `pip install sct_task_sciseg` into SCT's Python installs this package only. torch
    # and nnU-Net come from SCT there (7.x ships the nnunetv2-neuropoly fork, which PyPI's nnunetv2 would
    # overwrite); standalone users take them with the "standalone" extra.
    install_requires=[
        "nibabel>=3.2",
        "numpy",
        "scipy",
        "requests>=2.25",
        "filelock>=3.0",
        "platformdirs>=2.5",
        "tqdm",
        "pillow",
        "matplotlib",
    ],
    extras_require={
        # sciseg_analyze_lesion's SCT-style .xlsx (SCT's own environment has xlsxwriter, also used)
        "xlsx": ["openpyxl"],
        "standalone": [
            # 2.4.0/2.4.1 crash in predict_single_npy_array, 2.4.2 gives empty SCIseg cords (SCT #4556)
            "nnunetv2>=2.3.1,!=2.4.0,!=2.4.1,!=2.4.2,<=2.8.1",  # upper bound: the newest tested
            "acvl_utils!=0.2.1",  # 0.2.1 breaks nnU-Net inference
            "torch>=2.0",
        ],
        # the tests also write SCT's spreadsheet with both writers (sciseg_analyze_lesion -xlsx 1)
        "test": ["pytest>=7", "openpyxl", "xlsxwriter"],
        # OpenVINO: the -fast engine, 1.5-1.8x faster than PyTorch fp32 on 2-core CPUs (see README)
        "fast": ["openvino>=2023.1", "onnx>=1.14"],
        # -scheduler local|tcp://|tls://|slurm (Client.register_plugin; bokeh serves the dashboard;
        # cryptography makes each SLURM run's TLS certificates); bounds tested
        "cluster": ["dask>=2026.8.0,<2027", "distributed>=2026.8.0,<2027", "dask-jobqueue>=0.9.0,<0.10",
                    "bokeh>=3.1", "cryptography>=41"],
    },
    entry_points={
        "console_scripts": [
            "sciseg=sct_task_sciseg.cli:console_main",
            "sct_deepseg_sciseg=sct_task_sciseg.sct:deepseg_main",
            "sciseg_analyze_lesion=sct_task_sciseg.cli.analyze_lesion:main",
        ],
        "sct_task_sciseg.tasks": [
            "seg_sc_lesion_t2w_sci=sct_task_sciseg.tasks:SCISEG",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
