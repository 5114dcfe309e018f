#!/bin/bash
# The salient-object model (cam_saliency's object / stuff split; a shared step of bench/real_data.py),
# chosen where no evaluated split is touched: its object IoU on ecssd (validation only, never
# trained on; bench/saliency_quality.py) and cam_saliency on msrc_v2 n 1..5 (a part of its TRAINING
# split) from the BCE classifier of bench/select_msrc_deeplab.sh (trained on n 6..15 with tags, the
# chain's recipe); n 16..20 is never touched. Each model is a one-class DeepLab on duts_tr's object
# masks at 256 px, from the procedural pretraining. Arms: chain (work/real/shared/saliency: 1,200
# steps, flips both ways, the chain's until the eighth stop), h3000 (3,000 steps, horizontal flips only, window
# scales 0.75,1,1.25), h6000 (the same, 6,000 steps).
# Needs bench/real_data.py run once (work/real/shared) and bench/select_msrc_deeplab.sh's classifier.
# About 10 min to train h3000 (20 min h6000), 2 min to score an arm, alone on 2 CPU cores.
# Measured (ecssd, all 1,000 images: object IoU / MAE; cam_saliency on msrc_v2 n 1..5):
#   chain  0.457 / 0.312; 0.500
#   h3000  0.560 / 0.215; 0.525   (the chain's since the eighth stop: bench/real_data.py SALIENCY_AUG, steps)
#   h6000  0.588 / 0.189; 0.540   (the same recipe, 6,000 steps: 1,062 s of training against 531 s)
# and DeepLab on the cam_saliency pseudo-labels of n 6..15 (bench/select_msrc_pseudo_classifier.sh with
# SAL=work/select_saliency/repo_h3000 SAL_TAG=sal_h3000 TTA=1): BCE 0.349 -> 0.406, SSC seed 0 0.342 -> 0.415;
# h6000 (SAL_TAG=sal_h6000 ARMS=bce): pseudo-labels of n 6..15 0.684 (h3000 0.686), DeepLab 0.399 (0.406): not taken,
# as DeepLab learns no better from it for twice the training time.
W=work/select_saliency
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/msrc_v2
SEL='\d+_[1-5]_s'
R=$W/repo_cls
with_sam $R
$T export --checkpoint work/select_msrc_deeplab/cls.pt --repo $R
for arm in ${ARMS:-chain h3000}; do
  case $arm in
    chain) sal=work/real/shared/saliency;;
    h3000|h6000) sal=$W/repo_$arm
      [ -d $sal ] || $T train-deeplab --data ../shared/data/duts_tr --size 256 --steps ${arm#h} --no-vflip --scales 0.75,1,1.25 \
          --init-classifier work/real/shared/pretrain_classifier.pt --out $W/sal_$arm.pt --repo $sal;;
    *) echo "unknown arm $arm"; exit 2;;
  esac
  python bench/saliency_quality.py $sal --out $W/ecssd_$arm.json
  $T evaluate --data $D --ids "$SEL" --model-repo $R --methods cam_threshold,cam_saliency --saliency $sal --stuff-agreement 1.0 \
      --overlays 0 --out $W/eval_$arm.json
  score $W/eval_$arm.json
done
