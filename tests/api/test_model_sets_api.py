"""Model sets: several classifiers / DeepLabs in one repository, one shared SAM and embedding cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest

from service.api.background import BackgroundServer
from service.settings import REPO_ROOT
from tests.conftest import make_settings, png_bytes
from training.synthetic import HELD_OUT_SEED, generate
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

OTHER_CLASSES = ["dent", "burr", "pit", "smear"]


def add_set(repo: Path, name: str, classes: list[str]) -> None:
    """``<name>.cam_classifier`` and ``<name>.deeplab``: the default models under other class names."""
    for model in ("cam_classifier", "deeplab"):
        target = repo / f"{name}.{model}"
        shutil.copytree(repo / model, target)
        config = (target / "config.pbtxt").read_text().replace(f'name: "{model}"', f'name: "{name}.{model}"')
        (target / "config.pbtxt").write_text(config)
        (target / "labels.txt").write_text("\n".join(classes) + "\n")


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory: pytest.TempPathFactory) -> BackgroundServer:
    repo = tmp_path_factory.mktemp("sets") / "repo"
    shutil.copytree(REPO_ROOT / "model_repo", repo)
    add_set(repo, "tile_b", OTHER_CLASSES)
    server = BackgroundServer(make_settings(model_repo=repo))
    yield server  # type: ignore[misc]
    server.stop()


def test_sets_listed_with_their_classes(two_sets: BackgroundServer) -> None:
    with two_sets.channel() as channel:
        listed = pb_grpc.SegmentationServiceStub(channel).ListModels(pb.ListModelsRequest(), timeout=10)
    sets = {s.name: s for s in listed.model_sets}
    assert set(sets) == {"default", "tile_b"}
    assert list(sets["tile_b"].classes) == OTHER_CLASSES and list(sets["default"].classes) == ["scratch", "spot", "crack", "stain"]
    assert dict(sets["tile_b"].models) == {"cam_classifier": "tile_b.cam_classifier", "deeplab": "tile_b.deeplab",
                                           "sam_encoder": "sam_encoder", "sam_decoder": "sam_decoder"}
    assert dict(sets["tile_b"].versions)["tile_b.deeplab"] == "1"
    assert {m.name for m in listed.models} >= {"tile_b.cam_classifier", "tile_b.deeplab", "cam_classifier", "deeplab"}


def test_each_request_gets_its_sets_classes_through_one_sam(two_sets: BackgroundServer) -> None:
    s = generate(HELD_OUT_SEED, 7)
    image = pb.Image(encoded=png_bytes(s.image))
    with two_sets.channel() as channel:
        stub = pb_grpc.SegmentationServiceStub(channel)
        before = two_sets.inference_count("sam_encoder")
        a = stub.Segment(pb.SegmentRequest(image=image, labels=pb.WeakLabels(image_labels=["stain"])), timeout=60)
        b = stub.Segment(pb.SegmentRequest(image=image, labels=pb.WeakLabels(image_labels=["smear"]), model_set="tile_b"), timeout=60)
        assert [c.class_name for c in a.classes] == ["stain"] and [c.class_name for c in b.classes] == ["smear"]
        assert "tile_b.cam_classifier" in b.model_versions and "cam_classifier" in a.model_versions
        assert two_sets.inference_count("sam_encoder") - before == 1  # the second set's request reused the shared SAM's cached embedding
        with pytest.raises(grpc.RpcError) as info:
            stub.Segment(pb.SegmentRequest(image=image, labels=pb.WeakLabels(image_labels=["stain"]), model_set="tile_b"), timeout=60)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "smear" in info.value.details()
        p = stub.Predict(pb.PredictRequest(image=image, model_set="tile_b"), timeout=60)
        assert p.model_version == "1" and {c.class_name for c in p.classes} <= {"background", *OTHER_CLASSES}
    assert two_sets.metric("wsss_model_set_requests_total", {"rpc": "Segment", "model_set": "tile_b", "version": "1"}) >= 1
    assert two_sets.metric("wsss_model_set_requests_total", {"rpc": "Predict", "model_set": "tile_b", "version": "1"}) >= 1


def test_unknown_and_malformed_sets(two_sets: BackgroundServer) -> None:
    image = pb.Image(encoded=png_bytes(generate(HELD_OUT_SEED, 1).image))
    with two_sets.channel() as channel:
        stub = pb_grpc.SegmentationServiceStub(channel)
        for model_set, code, words in (("nope", grpc.StatusCode.NOT_FOUND, "default, tile_b"), ("../model_repo", grpc.StatusCode.INVALID_ARGUMENT, "set name"),
                                       ("Tile_B", grpc.StatusCode.INVALID_ARGUMENT, "set name")):
            calls = ((stub.Segment, pb.SegmentRequest(image=image, labels=pb.WeakLabels(image_labels=["stain"]), model_set=model_set)),
                     (stub.Predict, pb.PredictRequest(image=image, model_set=model_set)),
                     (stub.SegmentEverything, pb.SegmentEverythingRequest(image=image, model_set=model_set)))
            for call, request in calls:
                with pytest.raises(grpc.RpcError) as info:
                    call(request, timeout=30)
                assert info.value.code() == code and words in info.value.details(), (model_set, info.value.details())


def test_label_with_a_model_set(two_sets: BackgroundServer, tmp_path: Path) -> None:
    """``weakseg label --model-set``: the set's classes name the COCO categories and the tags."""
    import json

    from PIL import Image

    from service.client import main as client_main

    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(generate(HELD_OUT_SEED, 10 + i).image).save(folder / "images" / f"im{i}.png")
    (folder / "labels.json").write_text(json.dumps({f"im{i}": {"image_labels": ["smear"]} for i in range(3)}))
    out = tmp_path / "out"
    assert client_main(["--address", two_sets.address, "label", str(folder), "--out", str(out), "--model-set", "tile_b"]) == 0
    coco = json.loads((out / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == OTHER_CLASSES and len(coco["images"]) == 3
    assert client_main(["--address", two_sets.address, "label", str(folder), "--out", str(tmp_path / "o2"), "--model-set", "nope"]) == 2
