"""Helpers of image generation: diffusion schedules and samplers, GAN losses, and honest scores.

- :mod:`.diffusion`: DDPM's forward process, loss and ancestral sampler; DDIM's sampler of few
  steps; classifier-free guidance;
- :mod:`.losses`: the non-saturating GAN loss, the Wasserstein loss and its gradient penalty;
- :mod:`.features` and :mod:`.scores`: FID and KID (torchmetrics) in the feature space of a
  classifier trained here (no Inception weights exist here), the real-vs-real floor, and the
  classifier's labels over generated samples (class coverage).
"""
