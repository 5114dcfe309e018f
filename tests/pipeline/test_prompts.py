"""CAM -> point prompts, against the S2C reference behaviour on fixed arrays."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max

from service.pipeline.prompts import cam_peaks


def _bumps(shape: tuple[int, int], centres: list[tuple[int, int, float]], sigma: float = 6.0) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    cam = np.zeros(shape, np.float32)
    for r, c, a in centres:
        cam = np.maximum(cam, a * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * sigma**2)))
    return cam / cam.max()


def _reference(cam: np.ndarray, th: float = 0.5) -> np.ndarray:
    """sangrockEG/S2C models/model_s2c.py, the peak sampling lines, on one class."""
    peak_max = np.array(np.unravel_index(np.argmax(cam), cam.shape)).reshape(1, 2)
    cam_filtered = ndi.maximum_filter(cam, size=3, mode="constant")
    peaks_temp = peak_local_max(cam_filtered, min_distance=20)
    peaks_valid = peaks_temp[cam[peaks_temp[:, 0], peaks_temp[:, 1]] > th]
    peaks = np.concatenate((peak_max, peaks_valid[1:]), axis=0)
    return np.flip(peaks, axis=-1)


def test_matches_reference_global_max_first_threshold_and_distance() -> None:
    cam = _bumps((160, 200), [(40, 50, 1.0), (100, 150, 0.8), (110, 60, 0.45), (45, 60, 0.9)])
    got = cam_peaks(cam, threshold=0.5, min_distance=20)
    np.testing.assert_array_equal(got, _reference(cam).astype(np.float32))
    assert tuple(got[0]) == (50.0, 40.0)  # global maximum first (x, y)
    def near(x: float, y: float) -> bool:  # the 3x3 maximum filter makes a plateau: peaks move by <= 1 px
        return bool((np.abs(got - [x, y]).max(axis=1) <= 1).any())

    assert near(150, 100)  # 0.8 peak kept
    assert not near(60, 110)  # 0.45 peak below tau
    assert not near(60, 45)  # within min_distance of the global max
    assert len(got) == 2


def test_random_arrays_match_reference() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        cam = ndi.gaussian_filter(rng.random((96, 128)), 4).astype(np.float32)
        cam = (cam - cam.min()) / (cam.max() - cam.min())
        th = float(rng.uniform(0.2, 0.8))
        np.testing.assert_array_equal(cam_peaks(cam, threshold=th, min_distance=20), _reference(cam, th).astype(np.float32))


def test_flat_cam_gives_one_point_and_cap_applies() -> None:
    assert cam_peaks(np.zeros((50, 50), np.float32)).shape == (1, 2)
    cam = _bumps((200, 200), [(30 + 45 * i, 30 + 45 * j, 1.0 - 0.01 * (i * 4 + j)) for i in range(4) for j in range(4)], sigma=5)
    assert len(cam_peaks(cam, 0.5, 20)) > 4
    assert len(cam_peaks(cam, 0.5, 20, max_peaks=4)) == 4
