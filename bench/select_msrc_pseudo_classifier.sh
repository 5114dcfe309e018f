#!/bin/bash
# Which classifier's CAMs msrc_v2's cam_saliency pseudo-labels should come from, chosen on a part of
# its TRAINING split (train n 6..15, score n 1..5; the evaluation split n 16..20 is never touched):
# the BCE classifier of bench/select_msrc_deeplab.sh (1,000 steps on n 6..15, colour jitter 0.3,
# from the shared SimCLR backbone), or the SSC classifier the chain trains from it (600 more steps
# with the SSC loss on the shared promptable model's SE maps; seeds 0 and 1, as one run of the SSC
# step moved cam_saliency by 0.025 on the evaluation split). Each classifier's CAM threshold and
# cam_saliency (the shared salient-object model) are scored on n 1..5; then DeepLab (500 steps, as
# the chain's: horizontal flips, scales 0.75,1,1.25) learns the pseudo-labels of n 6..15 from each
# and is scored on n 1..5, starting from the classifier that made them (the chain's way) or, with
# DL_INIT=bce, from the BCE classifier; TTA=1 scores it with test-time augmentation (eval_dl_*_tta.json).
# A checkpoint already made is reused. Needs `bench/real_data.py` run once
# (work/real/shared) and bench/select_msrc_deeplab.sh's classifier (made here when absent).
# Measured (CAM threshold / cam_saliency on n 1..5; pseudo-labels of n 6..15, mean image mIoU; DeepLab
# on them, n 1..5, from the classifier that made them / DL_INIT=bce):
#   bce        0.447 / 0.500; 0.618; 0.349
#   ssc_seed0  0.438 / 0.515; 0.644; 0.321 / 0.334
#   ssc_seed1  0.432 / 0.474; 0.631; 0.333 / 0.342
# The SSC step gives the training images better pseudo-labels (+0.013 / +0.026), but on the images
# it did not train on its cam_saliency moves by -0.026..+0.015 with the seed, and DeepLab does not
# gain: the chain keeps its SSC classifier (its DeepLab from it), as no arm is ahead by more than a seed's spread.
# With the salient-object model h3000 of bench/select_saliency.sh (SAL=work/select_saliency/repo_h3000
# SAL_TAG=sal_h3000 TTA=1 ARMS="bce ssc_seed0"; DeepLab scored with test-time augmentation, against 0.349 / 0.342):
#   bce        0.447 / 0.525; 0.686; 0.406
#   ssc_seed0  0.438 / 0.533; 0.687; 0.415
# and with h6000 (SAL_TAG=sal_h6000 ARMS=bce): bce 0.447 / 0.540; 0.684; 0.399.
# The figures above are from the CAM CRF of those days (appearance kernel 10,13); files without a _crf
# tag in their names were made so. CRF=5,8 (the default since bench/select_cam_crf.sh) names its files _crf5-8.
# With CRF=5,8 (SAL=work/select_saliency/repo_h3000 SAL_TAG=sal_h3000 TTA=1 ARMS=bce): cam_saliency 0.540;
# pseudo-labels 0.696; DeepLab 0.412 (seed 1 by hand: 0.422). SOURCE=cam_rw_saliency (the CAM random walk,
# bench/select_cam_random_walk.sh) with the same settings: 0.572; 0.692; 0.409 (seed 1 by hand: 0.428): better masks of
# n 1..5, not a better DeepLab.
# About 10 min an SSC classifier (its SE maps once, 4 min), 4 min a pseudo-label set + DeepLab.
W=work/select_msrc_pseudo_classifier
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/msrc_v2
TR='\d+_([6-9]|1[0-5])_s'
SEL='\d+_[1-5]_s'
SAL=${SAL:-work/real/shared/saliency}
st=${SAL_TAG:+_$SAL_TAG}  # SAL=REPO SAL_TAG=NAME: another salient-object model (bench/select_saliency.sh), its files named so
CRF_ARGS=(); [ -n "${CRF:-}" ] && CRF_ARGS=(--cam-crf "$CRF") && st=${st}_crf${CRF/,/-}  # CRF=W,S: the CAM CRF's appearance kernel (bench/select_cam_crf.sh)
SOURCE=${SOURCE:-cam_saliency}  # SOURCE=cam_rw_saliency: the pseudo-labels from the random walk's CAMs (files named _rw)
[ "$SOURCE" = cam_saliency ] || st=${st}_${SOURCE#cam_}; st=${st/_rw_saliency/_rw}
BCE=work/select_msrc_deeplab/cls.pt
[ -f $BCE ] || $T train-classifier --data $D --ids "$TR" --size 256 --steps 1000 --color-jitter 0.3 \
    --init work/real/shared/backbone_simclr.pt --out $BCE
for arm in ${ARMS:-bce ssc_seed0 ssc_seed1}; do
  R=$W/repo_$arm
  with_sam $R
  case $arm in
    bce) cls=$BCE;;
    ssc_seed*) cls=$W/cls_$arm.pt
      [ -f $cls ] || $T train-classifier --data $D --ids "$TR" --size 256 --steps 600 --seed ${arm#ssc_seed} --color-jitter 0.3 --init $BCE \
          --s2c $R --s2c-losses ssc --cpm-warmup 0 --cpm-refresh 300 --se-cache work/real/se_cache --out $cls;;
    *) echo "unknown arm $arm"; exit 2;;
  esac
  $T export --checkpoint $cls --repo $R
  $T evaluate --data $D --ids "$SEL" --model-repo $R --methods cam_threshold,$SOURCE --saliency $SAL --stuff-agreement 1.0 \
      "${CRF_ARGS[@]}" --overlays 0 --out $W/eval_cams_$arm$st.json
  PER_CLASS=${PER_CLASS:-0} score $W/eval_cams_$arm$st.json
  [ -f $W/pseudo_$arm$st/pseudo_labels.json ] || $T pseudo-label --data $D --ids "$TR" --model-repo $R --source $SOURCE --saliency $SAL \
      --stuff-agreement 1.0 "${CRF_ARGS[@]}" --no-overlays --out $W/pseudo_$arm$st
  pseudo_score $W/pseudo_$arm$st/pseudo_labels.json
  init=$cls; dl=$arm$st
  [ "${DL_INIT:-}" = bce ] && init=$BCE && dl=${arm}_bce_init$st
  [ -f $W/dl_$dl.pt ] || $T train-deeplab --data $D --ids "$TR" --size 256 --labels $W/pseudo_$arm$st/masks --steps 500 --init-classifier $init \
      --no-vflip --scales 0.75,1,1.25 --out $W/dl_$dl.pt --repo $W/repo_dl_$dl
  $T evaluate --data $D --ids "$SEL" --model-repo $R --methods dl --deeplab dl=$W/repo_dl_$dl --overlays 0 "${TTA_ARGS[@]}" --out $W/eval_dl_$dl$TTA_TAG.json
  score $W/eval_dl_$dl$TTA_TAG.json
done
