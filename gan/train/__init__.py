"""The one training loop (``loop.train``) with what only it uses: the config and its per-task
sections (``config``), a trainer object per task (``trainers``), their steps (``steps``,
GFP-GAN's in ``gfpgan``), checkpoints, data-parallel helpers."""
