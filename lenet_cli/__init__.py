"""lenet-cli: the PyTorch tutorial's LeNet as a command-line tool, and a fast trainer for it."""

__version__ = "0.1.0"
