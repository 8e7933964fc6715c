"""roft's trainables: data, featurization, splits, backbones, methods and the Ray trainable."""
