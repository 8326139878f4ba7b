"""The one training loop (``loop.train``) with what only it uses: the per-task steps, GFP-GAN's
step, checkpoints, data-parallel helpers."""
