"""Seconds for one forward pass of one tile, per network engine (the 'pure network time' of a tile).

    python tile_speed.py MODEL_FOLDER ENGINE [--shape 128 192 96] [--repeat 2]

ENGINE: torch, torch-channels-last, torch-bf16, torch-fp16, torch-compile, onnxruntime, openvino.
Prints one JSON line: engine, shape, seconds (best of the timed runs after one warm-up), peak RSS.
"""
import argparse
import json
import resource
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("engine")
    ap.add_argument("--shape", type=int, nargs=3, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    import torch
    from sct_task_sciseg.inference.loader import load_predictor
    from sct_task_sciseg.inference.settings import PredictorSettings
    from sct_task_sciseg.inference.tuning import configure_process
    backend = {"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(a.engine, "torch")
    precision = {"torch-bf16": "bf16", "torch-fp16": "fp16"}.get(a.engine, "fp32")
    settings = PredictorSettings(backend=backend, precision=precision, crop="none", threads=a.threads)
    configure_process(a.threads)
    loaded = load_predictor(Path(a.model), settings)
    predictor, engine = loaded.predictor, loaded.engine
    shape = a.shape or predictor.configuration_manager.patch_size
    x = torch.randn(1, 1, *shape)
    run = engine
    if a.engine == "torch-channels-last":
        net = engine.network.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
        run = net
    elif a.engine == "torch-compile":
        run = torch.compile(engine.network)
    times = []
    with torch.inference_mode():
        t0 = time.perf_counter()
        run(x)  # warm-up (export/compile for exported engines)
        warm = time.perf_counter() - t0
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t0)
    print("TILE " + json.dumps({"engine": a.engine, "shape": list(shape), "seconds": min(times),
                                "all": times, "first_call": warm, "threads": torch.get_num_threads(),
                                "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))


if __name__ == "__main__":
    main()
