"""The bundled models: manifest.toml, small .safetensors files and a model card for each.

The repository's weights/ folder, installed as the package ``restore.weights`` (pyproject.toml);
``restore.models.manifest.WEIGHTS_DIR`` finds it with importlib.resources.
"""
