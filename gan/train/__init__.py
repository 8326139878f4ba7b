"""The one training loop (``loop.train``) with what only it uses: the config and its per-task
sections (``config``), a trainer object per task (``trainers``), their steps (``steps``,
GFP-GAN's in ``gfpgan``), checkpoints, data-parallel helpers."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept. (Defined here, not in
    ``loop``, so the command line can name it without importing torch.)"""
