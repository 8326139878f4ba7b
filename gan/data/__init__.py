"""Training data in memory: paired augmentation, GFP-GAN degradations, batch makers per task."""
