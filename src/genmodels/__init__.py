"""genmodels: deep generative models of images and text, as a DVC + MLflow pipeline."""

__version__ = "0.1.0"
