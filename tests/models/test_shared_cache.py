"""The embedding cache shared by replicas, on a real redis-server process."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import redis

from service.api.background import BackgroundServer
from service.models.sam import ResizeLongestSide
from service.models.shared_cache import SharedEmbeddingStore, model_fingerprint
from tests.conftest import RedisProcess, make_settings, png_bytes
from training.synthetic import HELD_OUT_SEED, generate
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

EMB = np.random.default_rng(0).standard_normal((1, 256, 64, 64)).astype(np.float32)
GEOMETRY = ResizeLongestSide(300, 200)


def _store(url: str, results: list[str], **kw: object) -> SharedEmbeddingStore:
    return SharedEmbeddingStore(url, "f" * 16, observer=results.append, **kw)  # type: ignore[arg-type]


def test_round_trip_ttl_and_dtypes(redis_process: RedisProcess) -> None:
    results: list[str] = []
    exact = _store(redis_process.url, results, dtype="float32", ttl_seconds=120)
    assert exact.get("k1") is None
    exact.put("k1", EMB, GEOMETRY)
    got = exact.get("k1")
    assert got is not None and np.array_equal(got[0], EMB) and got[1] == GEOMETRY
    assert results == ["miss", "store", "hit"]
    client = redis.Redis.from_url(redis_process.url)
    keys = [k.decode() for k in client.keys("wsss:emb:*")]
    assert keys == ["wsss:emb:ffffffffffffffff:float32:k1"] and 110 <= client.ttl(keys[0]) <= 120
    assert len(client.get(keys[0]) or b"") < EMB.nbytes + 200

    half = _store(redis_process.url, results, dtype="float16")
    assert half.get("k1") is None  # a float32 entry is not read as float16 (the dtype is in the key)
    half.put("k1", EMB, GEOMETRY)
    got16 = half.get("k1")
    assert got16 is not None and got16[0].dtype == np.float32
    np.testing.assert_allclose(got16[0], EMB, rtol=1e-3, atol=1e-3)
    assert len(client.get("wsss:emb:ffffffffffffffff:float16:k1") or b"") < EMB.nbytes // 2 + 200

    other = SharedEmbeddingStore(redis_process.url, "0" * 16)  # other weights: other keys
    assert other.get("k1") is None
    client.set("wsss:emb:ffffffffffffffff:float32:bad", b"not an embedding")
    assert exact.get("bad") is None


def test_fingerprint_follows_the_weights(tmp_path: Path) -> None:
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"x" * 3_000_000)
    b.write_bytes(b"x" * 2_999_999 + b"y")
    assert model_fingerprint(a, "sam_encoder", "1") != model_fingerprint(b, "sam_encoder", "1")
    assert model_fingerprint(a, "sam_encoder", "1") == model_fingerprint(a, "sam_encoder", "1")
    assert model_fingerprint(None, "sam_encoder", "1") != model_fingerprint(None, "sam_encoder", "2")


def test_an_outage_costs_only_hits(redis_process: RedisProcess) -> None:
    """Redis killed: get/put answer at once (error, then skipped while it is left alone); once it
    is back and the retry period passed, the store works again."""
    results: list[str] = []
    store = _store(redis_process.url, results, timeout_seconds=0.2, retry_seconds=0.5)
    store.put("k", EMB, GEOMETRY)
    redis_process.kill()
    start = time.monotonic()
    assert store.get("k") is None and store.get("k") is None
    store.put("k2", EMB, GEOMETRY)
    assert time.monotonic() - start < 1.0
    assert results[1:] == ["error", "skipped", "skipped"]
    redis_process.start()
    time.sleep(0.6)
    store.put("k3", EMB, GEOMETRY)
    assert store.get("k3") is not None and results[-2:] == ["store", "hit"]


def test_replica_b_reuses_what_replica_a_encoded(tmp_path: Path) -> None:
    """An interactive round on replica B after replica A encoded the image: B's encoder does not
    run (Redis on); with Redis killed the next rounds still answer OK."""
    redis_proc = RedisProcess(tmp_path)
    servers = [BackgroundServer(make_settings(embedding_cache_url=redis_proc.url)) for _ in range(2)]
    try:
        a, b = servers
        s = generate(HELD_OUT_SEED, 4)
        image = pb.Image(encoded=png_bytes(s.image))
        with a.channel() as ca, b.channel() as cb:
            stub_a, stub_b = pb_grpc.SegmentationServiceStub(ca), pb_grpc.SegmentationServiceStub(cb)
            first = stub_a.Segment(pb.SegmentRequest(image=image, labels=pb.WeakLabels(points=[pb.PointLabel(label="stain", x=60, y=60)])), timeout=60)
            assert first.mask.png
            before_b = b.inference_count("sam_encoder")
            second = stub_b.Segment(pb.SegmentRequest(image=image, labels=pb.WeakLabels(points=[pb.PointLabel(label="stain", x=90, y=120)])), timeout=60)
            assert second.mask.png and b.inference_count("sam_encoder") == before_b
            assert b.metric("wsss_shared_embedding_cache_total", {"result": "hit"}) == 1
            assert a.metric("wsss_shared_embedding_cache_total", {"result": "store"}) >= 1

            redis_proc.kill()
            other = pb.Image(encoded=png_bytes(generate(HELD_OUT_SEED, 5).image))
            for stub in (stub_b, stub_a, stub_b):
                resp = stub.Segment(pb.SegmentRequest(image=other, labels=pb.WeakLabels(image_labels=["stain"])), timeout=60)
                assert resp.mask.png
            assert b.metric("wsss_shared_embedding_cache_total", {"result": "error"}) >= 1
    finally:
        for srv in servers:
            srv.stop()
        redis_proc.kill()


def test_bad_cache_url_is_refused_in_the_settings() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="redis://"):
        make_settings(embedding_cache_url="http://not-redis:1")
