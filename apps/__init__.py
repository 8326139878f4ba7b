"""The Gradio app (``restore app``): apps.app.build_app / launch. Thin: every button calls a ``restore`` function."""
