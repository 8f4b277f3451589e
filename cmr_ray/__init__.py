"""cmr-ray: Ray-distributed multimodal representation learning on cardiac MRI."""
__version__ = "0.1.0"
