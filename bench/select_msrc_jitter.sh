#!/bin/bash
# Colour jitter for msrc_v2's classifiers, chosen on a part of its TRAINING split (train n 6..15,
# score n 1..5; the evaluation split n 16..20 is never touched): for each seed (SEEDS, default
# "0 1") and jitter (JITTERS, default "0 0.3"), the recipe of bench/select_msrc.sh (1,000 BCE steps
# from the procedural pretraining, then 600 SSC steps), both trainings with `--color-jitter J`, then
# the CAM pseudo-masks of n 1..5 (cam_threshold, cam_crf, cam_saliency with the saliency model of
# bench/select_pseudo_source.sh). Needs both run once before. ~8 min an arm alone on 2 CPU cores.
W=work/select_msrc_jitter
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/msrc_v2
TR='\d+_([6-9]|1[0-5])_s'
SEL='\d+_[1-5]_s'
for seed in ${SEEDS:-0 1}; do
  for j in ${JITTERS:-0 0.3}; do
    arm=seed${seed}_jitter$j; R=$W/repo_$arm; with_sam $R
    $T train-classifier --data $D --ids "$TR" --size 256 --steps 1000 --seed "$seed" --color-jitter "$j" \
        --init work/real/shared/pretrain_classifier.pt --out $W/cls_bce_$arm.pt
    $T train-classifier --data $D --ids "$TR" --size 256 --steps 600 --seed "$seed" --color-jitter "$j" --init $W/cls_bce_$arm.pt \
        --s2c $R --s2c-losses ssc --cpm-warmup 0 --cpm-refresh 300 --se-cache work/real/se_cache --out $W/cls_ssc_$arm.pt --repo $R
    $T evaluate --data $D --ids "$SEL" --model-repo $R --methods cam_threshold,cam_crf,cam_saliency \
        --saliency work/select_msrc/repo_saliency --overlays 0 --out $W/eval_$arm.json
    score $W/eval_$arm.json
  done
done
