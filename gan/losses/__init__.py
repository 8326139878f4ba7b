"""Losses: segmentation (and the U-Net border weight map), adversarial (and R1), perceptual."""
