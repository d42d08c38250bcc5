"""Data: download with verification, image preparation, text tokenization."""
