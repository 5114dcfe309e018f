"""Stage 7: optional refinement of the label map."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from service.errors import NotImplementedFeature
from service.pipeline.types import Refinement


def refine(label_map: npt.NDArray[np.uint8], image: npt.NDArray[np.uint8], method: Refinement) -> npt.NDArray[np.uint8]:
    """Refine ``label_map`` uint8 [H, W] using ``image`` uint8 [H, W, 3].

    Raises:
        NotImplementedFeature: CRF and superpixel refinement are not in this version.
    """
    if method is Refinement.NONE:
        return label_map
    raise NotImplementedFeature(f"refinement {method.value!r} is not implemented in this version; use REFINEMENT_NONE")
