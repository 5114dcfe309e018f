"""numpy's BLAS thread pool in the server process: one thread.

numpy's largest matrix products in the server are the CAM random walk's
(``service/pipeline/cam_random_walk.py``). OpenBLAS's threads spin for a while after each product
ends. In the server those spinning threads took the cores from the ONNX Runtime call that
followed: the classifier took 49 ms instead of 35 after a 4 ms walk (``bench/segment_latency.py``).
The server's concurrency comes from its requests and from ONNX Runtime's own pools, so BLAS runs
one thread.

The limit is set once, at start, in the main thread. Measured with this OpenBLAS: a limit set per
walk did not hold. Once one worker thread has set and restored it, another thread's change has no
effect while that thread lives.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def one_blas_thread() -> list[str]:
    """Limit every BLAS library loaded so far (numpy's, SciPy's, OpenCV's) to one thread, for
    good; returns their file names."""
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    blas.limit(limits=1)
    names = [str(lib["filepath"]).rsplit("/", 1)[-1] for lib in blas.info()]
    log.info("numpy's BLAS runs one thread (%s)", ", ".join(names) or "none loaded")
    return names
