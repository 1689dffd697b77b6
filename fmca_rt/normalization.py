"""Input normalization every FMCA-Net artifact is trained and deployed with (ImageNet statistics, RGB order)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
