"""bench/real_data.py's chain time: which steps a data set's chain to its DeepLab is made of."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.real_data import CONFIGS, chain_steps

SHARED = {"generate_pretrain_images": 49.0, "pretrain_classifier": 156.0, "pretrain_backbone": 835.0, "train_promptable": 1135.0,
          "train_saliency": 531.0}
OWN = {"export_promptable": 3.0, "train_classifier_bce": 279.0, "train_classifier_ssc": 505.0, "pseudo_label": 52.0,
       "train_deeplab_pseudo": 134.0, "train_deeplab_gt": 144.0, "evaluate": 156.0, "evaluate_cam_bce": 7.0}


def test_msrc_chain_counts_its_salient_object_model_and_not_the_upper_bound() -> None:
    chain = chain_steps(CONFIGS["msrc_v2"], OWN, SHARED)
    assert set(chain) == set(SHARED) | set(OWN) - {"train_deeplab_gt", "evaluate_cam_bce"}
    assert all(chain[k] in (SHARED.get(k), OWN.get(k)) for k in chain)


def test_magnetic_tile_chain_leaves_out_the_shared_models_it_does_not_use() -> None:
    chain = chain_steps(CONFIGS["magnetic_tile"], OWN, SHARED)
    # cam_threshold pseudo-labels from a classifier that starts from the SimCLR backbone: neither the
    # salient-object model nor the procedural pretraining it starts from is on the way to its DeepLab
    assert set(chain) == {"pretrain_backbone", "train_promptable"} | set(OWN) - {"train_deeplab_gt", "evaluate_cam_bce"}
    assert sum(chain.values()) == 835.0 + 1135.0 + 3.0 + 279.0 + 505.0 + 52.0 + 134.0 + 156.0


def test_a_step_reused_from_an_earlier_run_counts_with_its_recorded_time() -> None:
    # --reuse records a reused checkpoint's seconds under the step's name, a skipped step has none
    chain = chain_steps(CONFIGS["magnetic_tile"], {"train_classifier_bce": 10.0}, {"train_promptable": 20.0})
    assert chain == {"train_promptable": 20.0, "train_classifier_bce": 10.0}


def test_a_reused_checkpoint_counts_the_wall_time_of_the_command_that_made_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from bench import real_data

    ckpt = tmp_path / "backbone.pt"

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        ckpt.write_bytes(b"weights")  # the command writes its --out
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(real_data.subprocess, "run", fake_run)
    first: dict[str, float] = {}
    real_data.run_step("pretrain_backbone", ["pretrain-backbone", "--out", str(ckpt)], first, ckpt)
    record = real_data.wall_record(ckpt)
    assert record.is_file() and json.loads(record.read_text())["seconds"] == first["pretrain_backbone"]
    # a later run reuses the checkpoint and counts what the first run took, without loading it
    record.write_text(json.dumps({"seconds": 654.3, "command": "pretrain-backbone"}))
    again: dict[str, float] = {}
    real_data.run_step("pretrain_backbone", ["pretrain-backbone", "--out", str(ckpt)], again, ckpt)
    assert again == {"pretrain_backbone": 654.3}


def test_a_checkpoint_made_elsewhere_counts_its_recorded_training_seconds(tmp_path: Path) -> None:
    import torch

    from bench.real_data import reused_seconds

    ckpt = tmp_path / "promptable.pt"
    torch.save({"kind": "backbone", "provenance": {"seconds": 649.7}}, ckpt)
    assert reused_seconds(ckpt) == (649.7, "training seconds, no wall time recorded")


def test_pseudo_label_names_carry_the_crf_and_the_random_walk_they_were_made_with() -> None:
    # --reuse finds pseudo-labels by name: one made with another CRF or walk must never be taken
    from dataclasses import replace

    from bench.real_data import cam_labels_recipe

    assert cam_labels_recipe("cam_threshold") == "" and cam_labels_recipe("pipeline") == ""
    assert cam_labels_recipe("cam_saliency") == "_crf5-8"
    assert cam_labels_recipe("cam_rw") == "_rw64-8"
    assert cam_labels_recipe("cam_rw_saliency") == "_crf5-8_rw64-8"
    assert cam_labels_recipe("cam_saliency", "0.5,8") == "_crf0.5-8"  # a data set's own CRF (Config.cam_crf)
    assert cam_labels_recipe("cam_rw", "0.5,8") == "_rw64-8"
    # a chain whose pseudo-labels come from cam_rw_saliency needs the salient-object model like cam_saliency's
    chain = chain_steps(replace(CONFIGS["magnetic_tile"], pseudo_source="cam_rw_saliency"), OWN, SHARED)
    assert {"train_saliency", "pretrain_classifier"} <= set(chain)
