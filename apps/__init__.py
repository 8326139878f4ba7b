"""The Gradio app (``restore app``): restore.apps.app.build_app / launch. Thin: every button calls a
``restore`` function. The repository's apps/ folder, installed inside restore's namespace as
``restore.apps`` (pyproject.toml)."""
