"""SCIseg: spinal cord + intramedullary lesion segmentation on T2w MRI of spinal cord injury."""
from .schema import LabelScheme, Output, PredictorDefaults, Release, Task

SCISEG = Task(
    name="seg_sc_lesion_t2w_sci",
    aliases=("lesion_sci_t2",),
    description="Spinal cord and intramedullary lesion segmentation on T2w MRI of spinal cord injury (SCIseg)",
    short_description="SCI lesion and spinal cord segmentation on T2w MRI (SCIseg, verified install)",
    long_description=(
        "SCIseg segments the spinal cord and intramedullary lesions (oedema, haemorrhage) on T2w MRI of "
        "traumatic and non-traumatic spinal cord injury (SCI, DCM), in any orientation (axial or sagittal) "
        "and resolution. nnU-Net v2, 3d_fullres, region-based (cord includes lesion). V2 was trained on 7 "
        "sites including degenerative cervical myelopathy and acute pre-operative SCI."
    ),
    contrasts=("t2",),
    citation=(
        "Karthik EN, Valosek J, et al. SCIseg: Automatic Segmentation of Intramedullary Lesions in Spinal "
        "Cord Injury on T2-weighted MRI Scans. Radiology: Artificial Intelligence 2024. "
        "doi:10.1148/ryai.240005. | Karthik EN, et al. SCIsegV2: A Universal Tool for Segmentation of "
        "Intramedullary Lesions in Spinal Cord Injury. MICCAI AMAI 2024, LNCS. "
        "doi:10.1007/978-3-031-82007-6_19"
    ),
    labels=LabelScheme(
        outputs=(
            Output("sc", (1, 2), "_sc_seg", "spinal cord, lesion included", title="cord"),
            Output("lesion", (2,), "_lesion_seg", "intramedullary lesion", title="lesion"),
        ),
        parent="sc",
        finding="lesion",
    ),
    releases=(
        Release("r20240729", "model_SCIsegV2_r20240729.zip", "SCIsegV2 (7 sites, SCI and DCM)"),
        Release("r20240130", "model-sci-multisite_r20240130.zip", "SCIseg V1 (3 sites)"),
        Release(
            "phantom-r20261124", "sciseg_phantom_r20261124.zip",
            "small demo model trained on synthetic phantoms (offline demo and tests; not for research)",
            sha256="54a4cb9bb5198ab1a853dcf1e180f3d9fd7cacbc58c6fce011d9d75aa03e0ca0", size=1313873,
            embedded=True,
        ),
    ),
    base_url="https://github.com/ivadomed/model_seg_sci/releases/download",
    dataset_labels={"background": 0, "sc": [1, 2], "lesion": 2},
    default_orientation="RPI",
    predictor=PredictorDefaults(),
    sct_model_key="model_seg_sci_multiclass_sc_lesion_nnunet",
    code_url="https://github.com/ivadomed/model_seg_sci",
)
