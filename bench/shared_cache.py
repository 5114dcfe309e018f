"""What the shared (Redis) embedding cache costs and saves, on a real redis-server.

Per embedding (SAM's [1, 256, 64, 64], 4 MiB in float32, for the default encoder and ViT-B alike):
an encoder run (the default encoder; a random-weight ViT-B export when ``--vit-b-repo`` is
given), a local LRU hit, a Redis hit and a Redis store, in float32 and float16. And what float16
storage does to the masks: the Segment pipeline with embeddings rounded through float16 vs
exact, on procedural images (training stream, where the default was chosen, and held-out stream).

    python bench/shared_cache.py [--vit-b-repo work/vitb/repo]   # writes bench/results/shared_cache.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.models.embedding_cache import CachedEncoder, pixel_key  # noqa: E402
from service.models.sam import ImageEmbedding, SamDecoder, SamEncoder  # noqa: E402
from service.models.shared_cache import SharedEmbeddingStore  # noqa: E402
from service.runtime import ModelRepository, create_backend  # noqa: E402


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 3)


def encoder(repo: Path) -> SamEncoder:
    backend = create_backend("onnxruntime", ModelRepository(repo), "CPUExecutionProvider")
    backend.load(["sam_encoder"])
    return SamEncoder(backend)


def costs(enc: SamEncoder, url: str, repeat: int) -> dict[str, object]:
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    out: dict[str, object] = {"encoder_run_ms": median_ms(lambda: enc.embed(image), max(1, repeat // 10) if repeat > 10 else repeat)}
    local = CachedEncoder(enc, 64 << 20)
    local.embed(image)
    out["local_hit_ms"] = median_ms(lambda: local.embed(image), repeat)
    key = pixel_key(image)
    out["pixel_hash_ms"] = median_ms(lambda: pixel_key(image), repeat)
    emb = enc.embed(image)
    for dtype in ("float32", "float16"):
        store = SharedEmbeddingStore(url, "bench", dtype)
        out[f"redis_store_{dtype}_ms"] = median_ms(lambda: store.put(key, np.asarray(emb.embeddings), emb.geometry), repeat)  # noqa: B023
        out[f"redis_hit_{dtype}_ms"] = median_ms(lambda: store.get(key), repeat)  # noqa: B023
        out[f"redis_bytes_{dtype}"] = len(store.client.get(store.prefix + key) or b"")
        store.close()
    return out


class Float16Encoder:
    """An encoder whose embeddings went through float16 and back (what a float16 Redis hit gives)."""

    def __init__(self, inner: SamEncoder) -> None:
        self.inner, self.name, self.version = inner, inner.name, inner.version

    def embed(self, image: np.ndarray) -> ImageEmbedding:
        e = self.inner.embed(image)
        return ImageEmbedding(np.asarray(e.embeddings).astype(np.float16).astype(np.float32), e.geometry, e.encoder_version)

    def warmup(self) -> ImageEmbedding:
        return self.inner.warmup()


def float16_effect(repo: Path, seed: int, n: int) -> dict[str, float]:
    """Pixels whose label differs, and mIoU against the masks, exact vs float16 embeddings."""
    from service.models.cam_classifier import CamClassifier
    from service.pipeline.evaluation import quality_metrics
    from service.pipeline.segment import PipelineConfig, Segmenter
    from service.pipeline.types import SegmentInput, WeakLabels
    from training.synthetic import CLASSES, generate

    backend = create_backend("onnxruntime", ModelRepository(repo), "CPUExecutionProvider")
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder"])
    enc, dec, cls = SamEncoder(backend), SamDecoder(backend), CamClassifier(backend)
    exact, half = Segmenter(cls, enc, dec, PipelineConfig()), Segmenter(cls, Float16Encoder(enc), dec, PipelineConfig())  # type: ignore[arg-type]
    differ, total, m_exact, m_half = 0, 0, [], []
    for i in range(n):
        s = generate(seed, i)
        if not s.labels:
            continue
        request = SegmentInput(image=s.image, labels=WeakLabels(image_labels=tuple(s.labels)))
        a, b = exact.segment(request).label_map, half.segment(request).label_map
        differ += int((a != b).sum())
        total += a.size
        m_exact.append(quality_metrics(a, s.mask, len(CLASSES)).miou)
        m_half.append(quality_metrics(b, s.mask, len(CLASSES)).miou)
    return {"images": len(m_exact), "pixels_differing_pct": round(100 * differ / total, 4),
            "miou_exact": round(float(np.mean(m_exact)), 4), "miou_float16": round(float(np.mean(m_half)), 4)}


def main() -> None:
    from tests.conftest import RedisProcess
    from training.synthetic import HELD_OUT_SEED, TRAIN_SEED

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=str(ROOT / "model_repo"))
    parser.add_argument("--vit-b-repo", default="", help="a repository with a ViT-B sam_encoder (e.g. random weights via export-sam)")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "shared_cache.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis_proc = RedisProcess(Path(tmp))
        try:
            report: dict[str, object] = {
                "machine": f"{platform.machine()} x{os.cpu_count()} cores", "command": "python bench/shared_cache.py " + " ".join(sys.argv[1:]),
                "redis": "redis-server on 127.0.0.1 (loopback: no network latency; add the round trip of your network)",
                "default_encoder": costs(encoder(Path(args.repo)), redis_proc.url, args.repeat),
            }
            if args.vit_b_repo:
                report["vit_b_encoder_random_weights"] = costs(encoder(Path(args.vit_b_repo)), redis_proc.url, 3)
        finally:
            redis_proc.kill()
    report["float16_storage_effect"] = {
        "training_stream (chosen on)": float16_effect(Path(args.repo), TRAIN_SEED, args.images),
        "held_out_stream": float16_effect(Path(args.repo), HELD_OUT_SEED, args.images),
    }
    print(json.dumps(report, indent=2))
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
