#!/bin/bash
# Which pseudo-labels DeepLab should learn from on msrc_v2, chosen on a part of its TRAINING split
# (train n 6..15, score n 1..5; the evaluation split n 16..20 is never touched): the S2C (SSC)
# classifier of bench/select_msrc.sh pseudo-labels n 6..15 with each source, DeepLab trains 500
# steps on each, and is scored on n 1..5 beside the same DeepLab on ground truth (select_msrc.sh's
# dl_proc: 0.369 then, 0.422 since Predict runs it at its training scale). Needs bench/select_msrc.sh
# run once before (cam_saliency's salient-object model is its duts_tr DeepLab, deeplab_duts.pt).
# About 6 min a source on 2 CPU cores; SOURCES="cam_crf consensus" picks the sources, SEED=N (default
# 0) DeepLab's seed (a run's spread; the pseudo-labels of an earlier run are then reused).
W=work/select_msrc
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/msrc_v2
TR='\d+_([6-9]|1[0-5])_s'
SEL='\d+_[1-5]_s'
R=$W/repo_s2c_ssc
for src in ${SOURCES:-pipeline cam_threshold cam_crf cam_saliency consensus}; do
  extra=""
  if [ $src = cam_saliency ]; then
    [ -d $W/repo_saliency ] || $T export --checkpoint $W/deeplab_duts.pt --repo $W/repo_saliency
    extra="--saliency $W/repo_saliency"
  fi
  seed=${SEED:-0}; tag=$src; [ "$seed" = 0 ] || tag=${src}_seed$seed
  if [ "$seed" = 0 ] || [ ! -f $W/pseudo_$src/pseudo_labels.json ]; then
    $T pseudo-label --data $D --ids "$TR" --model-repo $R --source $src $extra --stuff-agreement 1.0 --no-overlays --out $W/pseudo_$src
  fi
  pseudo_score $W/pseudo_$src/pseudo_labels.json
  $T train-deeplab --data $D --ids "$TR" --size 256 --labels $W/pseudo_$src/masks --steps 500 --seed $seed --init-classifier $W/cls_s2c_ssc.pt \
      --out $W/dl_pseudo_$tag.pt --repo $W/repo_dl_pseudo_$tag
  $T evaluate --data $D --ids "$SEL" --model-repo $R --methods dl --deeplab dl=$W/repo_dl_pseudo_$tag --overlays 0 --out $W/eval_dl_pseudo_$tag.json
  score $W/eval_dl_pseudo_$tag.json
done
