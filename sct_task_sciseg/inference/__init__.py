"""Inference: settings, the network, checkpoints, engines, regions of interest and tiles, and (in
:mod:`.nnunet_compat`) every use of nnU-Net's internals. Importing this package imports neither torch nor
nnU-Net; :func:`.loader.load_predictor` does."""
