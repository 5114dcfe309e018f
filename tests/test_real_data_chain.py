"""bench/real_data.py's chain time: which steps a data set's chain to its DeepLab is made of."""

from __future__ import annotations

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
    # --reuse records a reused checkpoint's training seconds under the step's name, a skipped step has none
    chain = chain_steps(CONFIGS["magnetic_tile"], {"train_classifier_bce": 10.0}, {"train_promptable": 20.0})
    assert chain == {"train_promptable": 20.0, "train_classifier_bce": 10.0}
