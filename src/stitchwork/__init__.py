"""stitchwork: compare neural network representations.

Model stitching, re-basin and similarity indices as a library of plain functions on
tensors and modules, with thin Hydra apps on top (``stitchwork.apps``).
"""

__version__ = "0.1.0"
