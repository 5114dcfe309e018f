"""The service's SAM numbers are segment-anything's own: a real SAM architecture (a small ViT image
encoder and the real prompt encoder / mask decoder, random weights) exported by ``export-sam``
and served by ``SamEncoder`` / ``SamDecoder``, against eager ``SamPredictor`` on the same weights.

segment-anything's preprocessing calls torchvision's ``resize(to_pil_image(image), size)``; for a
PIL image torchvision's ``resize`` is Pillow's bilinear ``Image.resize`` (torchvision cannot be
installed beside this torch, see training/export_sam.py), so those two names are given their
Pillow definitions here.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from service.models.sam import SamDecoder, SamEncoder  # noqa: E402
from service.runtime import ModelRepository  # noqa: E402
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from tests.random_sam import random_sam  # noqa: E402
from training.export_sam import export_decoder, export_encoder, import_segment_anything  # noqa: E402

try:
    sa = import_segment_anything()
except ImportError as exc:  # pragma: no cover - only where segment-anything is not installed
    pytest.skip(f"segment-anything cannot be imported: {exc}", allow_module_level=True)


def _pil_resize(image: Image.Image, size: list[int] | tuple[int, int]) -> Image.Image:
    """torchvision.transforms.functional.resize on a PIL image with [h, w]: Pillow's bilinear."""
    return image.resize((size[1], size[0]), Image.Resampling.BILINEAR)


def _to_pil_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array)


def _small_sam() -> object:
    """A small ViT image encoder (2 blocks, one of them global attention, as SAM's are) inside the real SAM."""
    from segment_anything.modeling import ImageEncoderViT

    torch.manual_seed(0)
    encoder = ImageEncoderViT(
        depth=2, embed_dim=32, img_size=1024, mlp_ratio=2.0, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=2,
        patch_size=16, qkv_bias=True, use_rel_pos=True, global_attn_indexes=(1,), window_size=14, out_chans=256,
    )
    return random_sam(encoder, mlp_dim=512)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, SamEncoder, SamDecoder]:
    import segment_anything.utils.transforms as transforms

    sam = _small_sam()
    repo = tmp_path_factory.mktemp("sam_repo")
    export_encoder(sam, repo)
    export_decoder(sam, repo)
    backend = OnnxRuntimeBackend(ModelRepository(repo), "CPUExecutionProvider")
    backend.load(["sam_encoder", "sam_decoder"])
    patch = pytest.MonkeyPatch()
    patch.setattr(transforms, "resize", _pil_resize)
    patch.setattr(transforms, "to_pil_image", _to_pil_image)
    yield sa.SamPredictor(sam), SamEncoder(backend), SamDecoder(backend)
    patch.undo()


def _image(height: int, width: int) -> np.ndarray:
    """A smooth picture with edges (random noise would make every mask speckle)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(x / 17.0), 128 + 100 * np.cos(y / 23.0), 255 * ((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(height, width) / 3) ** 2)], -1)
    noise = np.random.default_rng(height * width).normal(0, 12, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.parametrize("size", [(200, 320), (320, 200), (256, 256)])
def test_service_equals_sam_predictor(models: tuple[object, SamEncoder, SamDecoder], size: tuple[int, int]) -> None:
    predictor, encoder, decoder = models
    h, w = size
    image = _image(h, w)
    predictor.set_image(image)  # type: ignore[attr-defined]
    embedding = encoder.embed(image)
    np.testing.assert_allclose(np.asarray(embedding.embeddings), predictor.features.numpy(), atol=1e-3)  # type: ignore[attr-defined]
    box = np.array([w * 0.2, h * 0.25, w * 0.7, h * 0.8], np.float32)
    point = np.array([[w * 0.5, h * 0.5]], np.float32)
    prompts = {  # name: (SamPredictor's keyword arguments, the decoder's coords and labels)
        "click": ({"point_coords": point, "point_labels": np.array([1])}, point, np.array([1.0], np.float32)),
        "click + negative": (
            {"point_coords": np.array([[w * 0.3, h * 0.4], [w * 0.8, h * 0.2]], np.float32), "point_labels": np.array([1, 0])},
            np.array([[w * 0.3, h * 0.4], [w * 0.8, h * 0.2]], np.float32), np.array([1.0, 0.0], np.float32),
        ),
        "box": ({"box": box}, box.reshape(2, 2), np.array([2.0, 3.0], np.float32)),
        "box + click": ({"point_coords": point, "point_labels": np.array([1]), "box": box},
                        np.concatenate([point, box.reshape(2, 2)]), np.array([1.0, 2.0, 3.0], np.float32)),
    }
    for name, (kwargs, coords, labels) in prompts.items():
        ours = decoder.predict(embedding, coords, labels)
        masks = decoder.upsample(ours.low_res_logits, embedding.geometry) > 0.0
        for multimask, ours_idx in ((False, [0]), (True, [1, 2, 3])):
            ref_masks, ref_iou, ref_low = predictor.predict(multimask_output=multimask, **kwargs)  # type: ignore[attr-defined]
            np.testing.assert_allclose(ours.low_res_logits[ours_idx], ref_low, atol=1e-3, err_msg=name)
            np.testing.assert_allclose(ours.iou_predictions[ours_idx], ref_iou, atol=1e-3, err_msg=name)
            for ours_mask, ref_mask in zip(masks[ours_idx], ref_masks):
                assert ours_mask.shape == ref_mask.shape == (h, w)
                assert _iou(ours_mask, ref_mask) >= 0.999, (name, multimask, _iou(ours_mask, ref_mask))
