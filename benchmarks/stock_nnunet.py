"""The stock nnU-Net peer: nnU-Net's own file pipeline (``predict_from_files``) on the same model folder.

    python stock_nnunet.py MODEL_FOLDER OUT_FOLDER IN.nii.gz [IN2.nii.gz ...]

nnU-Net's usual entry points (``nnUNetv2_predict``, ``initialize_from_trained_model_folder``) look the trainer
class up by importing every trainer module; on nnunetv2 2.6+ that reaches timm → torchvision, which crashes
where torchvision does not match torch (``operator torchvision::nms does not exist``). So the predictor is
initialised by hand, exactly as nnU-Net would: network from the plans with nnU-Net's own
``get_network_from_plans``, weights from the checkpoint, then ``manual_initialization``, SCT's settings
(tile step 0.5, Gaussian, no mirroring). Prints one JSON line of phase timings.
"""
import json
import os
import sys
import time

if __name__ == "__main__":
    t0 = time.perf_counter()
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ.setdefault(var, os.devnull)
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    t_import = time.perf_counter()
    model, out, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
    dataset_json = json.load(open(os.path.join(model, "dataset.json")))
    plans = PlansManager(os.path.join(model, "plans.json"))
    ckpt = torch.load(os.path.join(model, "fold_1", "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    cm = plans.get_configuration(ckpt["init_args"]["configuration"])
    lm = plans.get_label_manager(dataset_json)
    try:
        from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
        net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                     cm.network_arch_init_kwargs_req_import, 1, lm.num_segmentation_heads,
                                     allow_init=False, deep_supervision=False)
    except ImportError:  # nnunetv2 < 2.5
        from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
        net = get_network_from_plans(plans, dataset_json, cm, 1, deep_supervision=False)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=False, device=torch.device("cpu"),
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    predictor.manual_initialization(net, plans, cm, [ckpt["network_weights"]], dataset_json, ckpt["trainer_name"],
                                    ckpt.get("inference_allowed_mirroring_axes"))
    t_load = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    outputs = [os.path.join(out, os.path.basename(f).replace(".nii.gz", "")) for f in inputs]
    predictor.predict_from_files([[f] for f in inputs], outputs, save_probabilities=False, overwrite=True,
                                 num_processes_preprocessing=1, num_processes_segmentation_export=1)
    t_end = time.perf_counter()
    print("STOCK_TIMINGS " + json.dumps({"import": t_import - t0, "load": t_load - t_import,
                                         "predict": t_end - t_load, "total": t_end - t0}))
