#!/bin/bash
# Which S2C losses for magnetic_tile, chosen on its TRAINING split as the paper's Table 1 does
# (CAMs of the training images a classifier learnt from, i.e. the pseudo-labels' quality): from the
# BCE classifier of bench/real_data.py (2,000 steps on exp0-3), 600 more steps with SSC alone (the
# SSC + CPM classifier is the chain's own), each scored on exp1 (221 training images); exp4 is
# never touched. Needs `bench/real_data.py magnetic_tile` run once before. ~15 min on 2 CPU cores.
# The bce arm scores the chain's repo_bce, which holds its current BCE classifier: since the fifth stop
# the one from the SimCLR backbone (classifier_bce_simclr.pt), so run with FROM_TAG=simclr (SSC from
# it, file names gain _simclr; arms bce and ssc; ~5 min with the SE maps cached).
. "$(dirname "$0")/select_mt_lib.sh"
TR=$TR_ALL
suffix=${FROM_TAG:+_$FROM_TAG}
with_sam $W/repo_ssc$suffix
$T train-classifier --data $D --ids "$TR" --size 320 --steps 600 --init $R/classifier_bce$suffix.pt --s2c $W/repo_ssc$suffix --s2c-losses ssc \
    --cpm-warmup 0 --cpm-refresh 300 --se-cache work/real/se_cache --out $W/cls_ssc$suffix.pt --repo $W/repo_ssc$suffix
arms="bce ssc_cpm ssc"; [ -z "$suffix" ] || arms="bce ssc"
for arm in $arms; do
  repo=$R/repo_$arm; [ $arm = ssc ] && repo=$W/repo_ssc$suffix
  $T evaluate --data $D --ids "$SEL" --model-repo $repo --methods cam_threshold,cam_crf,s2c --stuff-agreement 1.0 --overlays 0 \
      --out $W/eval_s2c_$arm$suffix.json
  score $W/eval_s2c_$arm$suffix.json
done
