#!/bin/bash
# Which pseudo-labels DeepLab should learn from on magnetic_tile, chosen on its TRAINING split: the
# chain's S2C (SSC) classifier (trained on exp0-3 with image tags) pseudo-labels exp0, exp2, exp3 with
# each `pseudo-label --source`; DeepLab (balanced, class weights capped at 3, 500 steps) trains on
# each and is scored on exp1's masks, which neither model learnt from (the classifier saw exp1's
# images with their tags only); exp4 is never touched. Needs `bench/real_data.py magnetic_tile` run
# once before (cam_saliency: its shared salient-object model too). ~5 min a source alone on 2 CPU cores.
# SOURCES="pipeline_crf ...": also the pipeline with --refinement crf.
# FROM_TAG=simclr: the chain's S2C classifier from the SimCLR backbone instead (classifier_ssc_simclr.pt,
# the chain's since the fifth stop); file names gain _simclr.
# With the tenth stop's chain classifier (R=work/real_s31/magnetic_tile FROM_TAG=simclr_sharedbf16), DeepLab on exp1:
# cam_threshold 0.213, cam_rw (the CAM random walk, bench/select_cam_random_walk.sh) 0.183 (its background 0.84 against 0.97),
# cam_rw_saliency (SAL=work/real_s31/shared/saliency_3000steps_hflip_s0.75-1-1.25) 0.129 (background 0.75).
# CRF=W,S: the CAM sources' CRF (pseudo-label --cam-crf; file names gain _crfW-S). With magnetic_tile's own 0.5,8
# (bench/select_mt_cam_crf.sh): cam_rw_saliency 0.138 (background 0.80), cam_saliency 0.168 (background 0.94): still below
# cam_threshold's 0.213, though their pseudo-labels of exp0, 2, 3 are far closer to the masks (defect pixels: precision 0.44,
# recall 0.29 for cam_rw_saliency against 0.16, 0.007 for cam_threshold); 342k of their 549k "uneven" pixels are background.
. "$(dirname "$0")/select_mt_lib.sh"
TR=$TR_BUT_SEL
suffix=${FROM_TAG:+_$FROM_TAG}
repo=$W/repo_chain_ssc$suffix
chain_repo $R/classifier_ssc$suffix.pt $repo
for src in ${SOURCES:-pipeline cam_threshold}; do  # cam_saliency: 0.164 pseudo-masks on exp1 (CAM threshold 0.228)
  extra=""; case $src in cam_saliency|cam_rw_saliency) extra="--saliency ${SAL:-work/real/shared/saliency}";; esac
  tag=$src$suffix
  case $src in cam_crf|cam_saliency|cam_rw_saliency) [ -n "$CRF" ] && extra="$extra --cam-crf $CRF" && tag=${tag}_crf${CRF/,/-};; esac
  source=$src; [ $src = pipeline_crf ] && source="pipeline --refinement crf"  # the pipeline's masks refined by a CRF (evaluate's s2c_crf)
  # shellcheck disable=SC2086
  $T pseudo-label --data $D --ids "$TR" --model-repo $repo --source $source $extra --stuff-agreement 1.0 --no-overlays --out $W/pseudo_$tag
  $T train-deeplab --data $D --ids "$TR" --size 320 --labels $W/pseudo_$tag/masks --steps 500 --balance --max-class-weight 3 \
      --init-classifier $R/classifier_ssc$suffix.pt --out $W/dl_pseudo_$tag.pt --repo $W/repo_dl_pseudo_$tag
  $T evaluate --data $D --ids "$SEL" --model-repo $repo --methods dl --deeplab dl=$W/repo_dl_pseudo_$tag --overlays 0 \
      --out $W/eval_dl_pseudo_$tag.json
  score $W/eval_dl_pseudo_$tag.json
done
