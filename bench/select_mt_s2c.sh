#!/bin/bash
# Which S2C losses for magnetic_tile, chosen on its TRAINING split as the paper's Table 1 does
# (CAMs of the training images a classifier learnt from, i.e. the pseudo-labels' quality): from the
# BCE classifier of bench/real_data.py (2,000 steps on exp0-3), 600 more steps with SSC alone (the
# SSC + CPM classifier is the chain's own), each scored on exp1 (221 training images); exp4 is
# never touched. Needs `bench/real_data.py magnetic_tile` run once before. ~15 min on 2 CPU cores.
. "$(dirname "$0")/select_mt_lib.sh"
TR=$TR_ALL
with_sam $W/repo_ssc
$T train-classifier --data $D --ids "$TR" --size 320 --steps 600 --init $R/classifier_bce.pt --s2c $W/repo_ssc --s2c-losses ssc \
    --cpm-warmup 0 --cpm-refresh 300 --se-cache work/real/se_cache --out $W/cls_ssc.pt --repo $W/repo_ssc
for arm in bce ssc_cpm ssc; do
  repo=$R/repo_$arm; [ $arm = ssc ] && repo=$W/repo_ssc
  $T evaluate --data $D --ids "$SEL" --model-repo $repo --methods cam_threshold,cam_crf,s2c --stuff-agreement 1.0 --overlays 0 \
      --out $W/eval_s2c_$arm.json
  score $W/eval_s2c_$arm.json
done
