"""Every network and its frozen config: blocks, U-Nets, UNETR, pix2pix's U-Net and PatchGAN, the
restorer, StyleGAN2 and its discriminator, GFP-GAN (published parameter names) and its
StyleGAN2 prior, the colorizer and its AC discriminator, facial-component Ds, HED, ArcFace."""
