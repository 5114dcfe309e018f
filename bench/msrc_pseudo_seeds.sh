#!/bin/bash
# How much of a change in msrc_v2's DeepLab-on-pseudo-labels figure is its seed: the chain's
# DeepLab recipe (bench/real_data.py msrc_v2) trained again with SEEDS (default 1) on the chain's
# cam_saliency pseudo-labels from the seventh stop's salient-object model (1,200 steps) and from
# the eighth stop's (3,000 steps, bench/select_saliency.sh), scored on the evaluation split n 16..20
# as the report does. A report, not a selection: the eighth stop chose the salient-object model on
# the training split before this ran. Needs both chains' pseudo-labels in work/real/msrc_v2.
# About 3 min a DeepLab, 1 min the scoring, alone on 2 CPU cores.
W=work/msrc_pseudo_seeds
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/msrc_v2
R=work/real/msrc_v2
TR='\d+_([1-9]|1[0-5])_s'
EV='\d+_(1[6-9]|20)_s'
declare -A PSEUDO=([sal1200]=$R/pseudo_ssc_cam_saliency_jitter0.3_simclr [sal3000]=$R/pseudo_ssc_cam_saliency_jitter0.3_simclr_sal3000steps_hflip_s0.75-1-1.25)
dls=(); methods=""
for s in ${SEEDS:-1}; do
  for arm in sal1200 sal3000; do
    [ -f $W/dl_${arm}_seed$s.pt ] || $T train-deeplab --data $D --ids "$TR" --size 256 --labels ${PSEUDO[$arm]}/masks --steps 500 --seed $s \
        --init-classifier $R/classifier_ssc_jitter0.3_simclr.pt --no-vflip --scales 0.75,1,1.25 --predict-scales 0.75,1,1.25 --predict-flip \
        --out $W/dl_${arm}_seed$s.pt --repo $W/repo_${arm}_seed$s
    dls+=(--deeplab ${arm}_seed$s=$W/repo_${arm}_seed$s); methods=$methods${methods:+,}${arm}_seed$s
  done
done
$T evaluate --data $D --ids "$EV" --model-repo $R/repo_ssc --methods $methods "${dls[@]}" --overlays 0 --out $W/eval.json
score $W/eval.json
