"""Image-to-image networks (family ``restore``): super-resolution, restoration and fast style transfer,
and the feature network of the perceptual and style losses (a classifier, family ``classify``).

- :mod:`.sr`: SRCNN (Dong et al. 2014), ESPCN (Shi et al. 2016), SRResNet and SRGAN's
  discriminator (Ledig et al. 2017);
- :mod:`.restore`: a residual U-Net for denoising and inpainting;
- :mod:`.style`: the feed-forward style network (Johnson et al. 2016) and ``vgg-features``,
  a small VGG whose intermediate activations are the features of content, style and
  perceptual losses.
"""

from deeper.models.image2image import restore, sr, style  # noqa: F401 (register the models)
