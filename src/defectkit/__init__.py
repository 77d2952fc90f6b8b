"""defectkit: industrial visual inspection on MVTec-AD-style data.

Importing the package is cheap and has no side effects; heavy libraries (torch, ultralytics,
segment_anything) are imported only inside the functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
