"""pyvitcpp: vision encoders on the CPU from GGUF weights."""
__version__ = "0.1.0"
