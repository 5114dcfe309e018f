"""WeakSeg: weakly-supervised semantic segmentation as a gRPC service.

Layers, dependencies running one way: ``api`` (gRPC) -> ``pipeline`` -> ``models`` -> ``runtime``.
"""

__version__ = "0.1.0"
