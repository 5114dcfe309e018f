"""Training checkpoints (a network's weights + what it needs to be exported) and their export.

A checkpoint is a ``torch.save`` dict: ``kind`` (``cam_classifier``, ``promptable``, ``deeplab``, or
``backbone``: a pretrained backbone alone, which starts other trainings and is never exported),
``classes`` (foreground names; empty for the class-agnostic promptable model), ``state`` (the state
dicts), ``provenance`` (the data sets and ids it was trained on, step count, seconds). Export writes
the provenance next to the model as ``<model>/training.json``, so an evaluation can refuse a
promptable model trained on the masks of the data set it is asked to evaluate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.export import (
    PIXEL_MODELS,
    check_repo,
    export_classifier,
    export_deeplab,
    export_sam_decoder,
    export_sam_encoder,
    upgrade_versions,
)
from training.nets import CamNet, DeepLab, PromptDecoderNet, PromptEncoderBody


@dataclass(frozen=True)
class PredictAugmentation:
    """A DeepLab's test-time augmentation, written into its config (``predict_scales`` /
    ``predict_flip``): each field given replaces the checkpoint's (``train-deeplab --predict-scales``)."""

    scales: tuple[float, ...] | None = None
    flip: bool | None = None


KINDS = ("cam_classifier", "promptable", "deeplab", "backbone")
MODELS_OF = {"cam_classifier": ("cam_classifier",), "promptable": ("sam_encoder", "sam_decoder"), "deeplab": ("deeplab",), "backbone": ()}


def save(path: Path, kind: str, classes: Sequence[str], state: dict[str, Any], provenance: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"kind": kind, "classes": list(classes), "state": state, "provenance": provenance}, path)


def load(path: Path) -> dict[str, Any]:
    ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("kind") not in KINDS:
        raise ValueError(f"{path} is not a WeakSeg training checkpoint (kind must be one of {KINDS})")
    return ckpt


def servable(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` when it holds a model the service serves; ValueError for a
    ``backbone`` checkpoint (or a file that is no checkpoint)."""
    ckpt = load(path)
    if not MODELS_OF[ckpt["kind"]]:
        raise ValueError(f"{path} is a {ckpt['kind']} checkpoint: it holds no model the service serves; start a training from it "
                         "(train-classifier --init, train-deeplab --init-classifier)")
    return ckpt


def classifier_from(ckpt: dict[str, Any]) -> CamNet:
    """The classifier of a ``cam_classifier`` checkpoint; of a ``deeplab`` or ``backbone`` checkpoint, a
    classifier with its backbone (e.g. one pretrained densely on another data set's masks, or
    self-supervised: ``pretrain-backbone``) and a new class layer."""
    net = CamNet(max(len(ckpt["classes"]), 1))  # a backbone checkpoint has no classes: its new class layer is a placeholder
    if ckpt["kind"] in ("deeplab", "backbone"):
        backbone = {k.removeprefix("backbone."): v for k, v in ckpt["state"]["net"].items() if k.startswith("backbone.")}
        net.backbone.load_state_dict(backbone)
    elif ckpt["kind"] == "cam_classifier":
        net.load_state_dict(ckpt["state"]["net"])
    else:
        raise ValueError(f"a {ckpt['kind']} checkpoint has no classifier backbone")
    return net.eval()


def export_next_version(path: Path, repo: Path, model_set: str = "", augmentation: PredictAugmentation | None = None) -> list[tuple[str, int]]:
    """Export into a live repository as each model's next version: exported and validated in a
    hidden folder beside, then config.pbtxt / labels.txt / training.json replaced and the version
    folder renamed into place last (a watching server never sees half a model). Returns
    (model, version) pairs; ``augmentation`` as ``export_loaded``."""
    import os
    import shutil
    import tempfile

    ckpt = servable(path)  # before the repository is touched
    repo.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=repo))
    try:
        names = export_loaded(ckpt, staging, model_set, augmentation)
        placed = []
        for name in names:
            target = repo / name
            target.mkdir(exist_ok=True)
            if name.split(".")[-1] in PIXEL_MODELS:
                upgrade_versions(target)  # the new config takes uint8 pixels: older exports must too, or a rollback could not load them
            versions = [int(p.name) for p in target.iterdir() if p.is_dir() and p.name.isdigit()]
            version = max(versions, default=0) + 1
            for f in (staging / name).iterdir():
                if f.is_file():
                    os.replace(f, target / f.name)
            os.rename(staging / name / "1", target / str(version))
            placed.append((name, version))
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export(path: Path, repo: Path, model_set: str = "", augmentation: PredictAugmentation | None = None) -> list[str]:
    """Export the checkpoint at ``path`` into ``repo`` (as model set ``model_set``'s models,
    ``<set>.<model>``, when given), validate it with the service's loader; returns the model names."""
    return export_loaded(servable(path), repo, model_set, augmentation)


def export_loaded(ckpt: dict[str, Any], repo: Path, model_set: str = "", augmentation: PredictAugmentation | None = None) -> list[str]:
    """``export`` of a checkpoint already loaded (``servable``). A DeepLab's config carries its
    test-time augmentation: ``augmentation``'s fields where given, else the checkpoint's provenance
    (``predict_scales`` / ``predict_flip``), which training.json then records.

    Raises:
        ValueError: ``augmentation`` given for a checkpoint that is no DeepLab.
    """
    kind, classes = ckpt["kind"], ckpt["classes"]
    prefix = f"{model_set}." if model_set else ""
    prov = dict(ckpt["provenance"])
    if augmentation is not None and (augmentation.scales is not None or augmentation.flip is not None):
        if kind != "deeplab":
            raise ValueError(f"test-time augmentation is a DeepLab's; this is a {kind} checkpoint")
        if augmentation.scales is not None:
            prov["predict_scales"] = list(augmentation.scales)
        if augmentation.flip is not None:
            prov["predict_flip"] = augmentation.flip
    if kind == "cam_classifier":
        export_classifier(classifier_from(ckpt), classes, repo, name=f"{prefix}cam_classifier")
    elif kind == "deeplab":
        net = DeepLab(len(classes))
        net.load_state_dict(ckpt["state"]["net"])
        scales = prov.get("predict_scales")
        export_deeplab(net.eval(), classes, repo, name=f"{prefix}deeplab", input_side=prov.get("size"),
                       predict_scales=tuple(scales) if scales else None, predict_flip=prov.get("predict_flip"))
    else:
        enc, dec = PromptEncoderBody(), PromptDecoderNet()
        enc.load_state_dict(ckpt["state"]["encoder"])
        dec.load_state_dict(ckpt["state"]["decoder"])
        export_sam_encoder(enc.eval(), repo, name=f"{prefix}sam_encoder")
        export_sam_decoder(dec.eval(), repo, name=f"{prefix}sam_decoder")
    names = [f"{prefix}{n}" for n in MODELS_OF[kind]]
    for name in names:
        (repo / name / "training.json").write_text(json.dumps(prov, indent=1) + "\n")
    check_repo(repo, names)
    return names


def provenance(repo: Path, model: str) -> dict[str, Any] | None:
    """``<repo>/<model>/training.json`` when the model was exported by this toolkit."""
    path = repo / model / "training.json"
    return json.loads(path.read_text()) if path.is_file() else None
