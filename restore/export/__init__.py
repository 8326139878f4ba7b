"""ONNX export of every network (``restore export``) and the onnxruntime backend of the commands.

- ``restore.export.specs``: what each network takes (a real test picture in its range) and how
  outputs are compared;
- ``restore.export.onnx``: ``export_onnx`` (export, check with onnxruntime, write atomically);
- ``restore.export.backend``: ``OnnxNetwork``, a module that runs a file in onnxruntime where
  the PyTorch network ran, and ``onnx_network`` (exported once into the weights cache).
"""
