#!/bin/bash
# Which S2C losses for magnetic_tile, chosen on its TRAINING split as the paper's Table 1 does
# (CAMs of the training images a classifier learnt from, i.e. the pseudo-labels' quality): from the
# BCE classifier of bench/real_data.py (2,000 steps on exp0-3), 600 more steps with SSC alone (the
# SSC + CPM classifier is the chain's own), each scored on exp1 (221 training images); exp4 is
# never touched. Needs `bench/real_data.py magnetic_tile` run once before. ~15 min on 2 CPU cores.
# FROM_TAG=simclr: from the chain's BCE classifier of the SimCLR backbone instead (classifier_bce_simclr.pt,
# the chain's since the fifth stop), file names gain _simclr; arms bce and ssc; ~5 min with the SE maps cached.
. "$(dirname "$0")/select_mt_lib.sh"
TR=$TR_ALL
suffix=${FROM_TAG:+_$FROM_TAG}
with_sam $W/repo_ssc$suffix
$T train-classifier --data $D --ids "$TR" --size 320 --steps 600 --init $R/classifier_bce$suffix.pt --s2c $W/repo_ssc$suffix --s2c-losses ssc \
    --cpm-warmup 0 --cpm-refresh 300 --se-cache work/real/se_cache --out $W/cls_ssc$suffix.pt --repo $W/repo_ssc$suffix
arms="bce ssc_cpm ssc"; [ -z "$suffix" ] || arms="bce ssc"
for arm in $arms; do
  repo=$W/repo_$arm$suffix
  [ $arm = ssc ] || chain_repo "$R/classifier_${arm/_/+}$suffix.pt" $repo  # bce, ssc_cpm: the chain's checkpoints
  $T evaluate --data $D --ids "$SEL" --model-repo $repo --methods cam_threshold,cam_crf,s2c --stuff-agreement 1.0 --overlays 0 \
      --out $W/eval_s2c_$arm$suffix.json
  score $W/eval_s2c_$arm$suffix.json
done
