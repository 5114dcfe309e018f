"""Stage 4: CAM -> point prompts (S2C, Kweon & Yoon, CVPR 2024).

Reference behaviour (sangrockEG/S2C, models/model_s2c.py): the global maximum of the normalised
CAM first; then local peaks of ``maximum_filter(cam, size=3, mode='constant')`` found by
``peak_local_max(min_distance=20)`` whose CAM value exceeds tau (0.5), dropping the first of them
(the global maximum again); each is a positive point.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from skimage.feature import peak_local_max


def cam_peaks(cam: npt.NDArray[np.float32], threshold: float = 0.5, min_distance: int = 20, max_peaks: int | None = None) -> npt.NDArray[np.float32]:
    """Point prompts of one class.

    Args:
        cam: float32 [H, W] normalised CAM (0..1).
        threshold: tau; local peaks at or below it are dropped (the global maximum is always kept).
        min_distance: ``peak_local_max`` min_distance in pixels.
        max_peaks: keep at most this many points (the global maximum first, then by CAM value).

    Returns:
        float32 [K, 2] (x, y) pixel coordinates, K >= 1, the global maximum first.
    """
    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    filtered = ndi.maximum_filter(cam, size=3, mode="constant")
    peaks = peak_local_max(filtered, min_distance=min_distance)
    valid = peaks[cam[peaks[:, 0], peaks[:, 1]] > threshold] if len(peaks) else peaks.reshape(0, 2)
    rc = np.concatenate([np.array([[row, col]]), valid[1:]], axis=0)
    if max_peaks is not None:
        rc = rc[:max_peaks]
    return rc[:, ::-1].astype(np.float32)
