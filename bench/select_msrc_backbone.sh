#!/bin/bash
# The msrc_v2 classifier's starting backbone, chosen on a part of its TRAINING split: train on
# n 6..15 (200 images), score on n 1..5 (100 images); the evaluation split (n 16..20) is never
# touched. Arms: the procedural pretraining (the chain's before), SimCLR on duts_tr's images
# (pretrain-backbone, no labels), SimCLR + the cell-level loss (--dense 1). Each arm: a BCE
# classifier of 1,000 steps from that backbone (CAM threshold), DeepLab on ground truth, 500 steps
# from the classifier, seeds 0 and 1. Needs `bench/real_data.py msrc_v2` run once before (the
# procedural pretraining in work/real/shared). About 12 min a backbone, 8 min an arm, alone on 2 CPU cores.
W=work/select_msrc_backbone
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/msrc_v2
TR='\d+_([6-9]|1[0-5])_s'
SEL='\d+_[1-5]_s'
for arm in ${ARMS:-proc simclr simclr_dense}; do
  case $arm in
    proc) init=work/real/shared/pretrain_classifier.pt;;
    simclr) init=$W/backbone_simclr.pt; [ -f $init ] || $T pretrain-backbone --data ../shared/data/duts_tr --steps 1500 --out $init;;
    simclr_dense) init=$W/backbone_simclr_dense.pt; [ -f $init ] || $T pretrain-backbone --data ../shared/data/duts_tr --steps 1500 --dense 1 --out $init;;
    *) echo "unknown arm $arm"; exit 2;;
  esac
  with_sam $W/repo_$arm
  $T train-classifier --data $D --ids "$TR" --size 256 --steps 1000 --init $init --out $W/cls_$arm.pt --repo $W/repo_$arm
  dls=(); methods=cam_threshold
  for s in 0 1; do
    $T train-deeplab --data $D --ids "$TR" --size 256 --steps 500 --seed $s --init-classifier $W/cls_$arm.pt \
        --out $W/dl_${arm}_seed$s.pt --repo $W/repo_dl_${arm}_seed$s
    dls+=(--deeplab dl_seed$s=$W/repo_dl_${arm}_seed$s); methods=$methods,dl_seed$s
  done
  $T evaluate --data $D --ids "$SEL" --model-repo $W/repo_$arm --methods $methods "${dls[@]}" --overlays 0 --out $W/eval_$arm.json
  score $W/eval_$arm.json
done
