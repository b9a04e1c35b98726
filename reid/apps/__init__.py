"""Applications on a trained model, behind ``tools/extract.py``, ``tools/visualize.py``,
``tools/export.py`` and ``tools/plot.py``: feature extraction to ``.npz``, pictures of ranked
lists and pseudo-label clusters, TorchScript / ONNX export and training curves."""
