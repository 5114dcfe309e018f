#!/bin/bash
# The magnetic_tile classifier's recipe, chosen on its TRAINING split: the chain's BCE classifier
# (2,000 steps from the procedural pretraining on exp0-3, letterbox 320, scales 0.5..1) does not
# learn break or uneven (CAM IoU 0 on exp1, class probability ~0.5 on its own training tiles).
# Arms (ARMS=...), each trained on exp0-3 with the tags and scored on exp1 (CAM threshold and CAM
# + CRF, as the pseudo-labels of training images are made): more (2,000 more BCE steps from the
# chain's classifier), full (2,000 steps at scale 1 only: every step at 320 px), simclr (the chain's
# recipe from the SimCLR backbone of the shared steps, pretrain-backbone on duts_tr), tiles (the
# chain's recipe from SimCLR on exp0-3's own pixels, 1,500 steps at side 256, no tags or masks
# read), duts_tiles (the duts_tr SimCLR backbone, 750 more SimCLR steps on exp0-3's pixels), chain
# (the procedural chain's BCE classifier itself, classifier_bce.pt, scored only). exp4 is never touched. Needs `bench/real_data.py
# magnetic_tile` and `bench/real_data.py msrc_v2` (the SimCLR backbone) run once before. ~9 / 15 / 7 / 20 / 14 min alone.
. "$(dirname "$0")/select_mt_lib.sh"
TR=$TR_ALL
for arm in ${ARMS:-more full}; do
  case $arm in more) extra="--init $R/classifier_bce.pt";; full) extra="--init work/real/shared/pretrain_classifier.pt --scales 1.0";;
    simclr) extra="--init work/real/shared/backbone_simclr.pt";; chain) extra="";;
    tiles) $T pretrain-backbone --data $D --ids "$TR" --side 256 --steps 1500 --out $W/backbone_tiles.pt
      extra="--init $W/backbone_tiles.pt";;
    duts_tiles) $T pretrain-backbone --data $D --ids "$TR" --side 256 --steps 750 --init work/real/shared/backbone_simclr.pt \
      --out $W/backbone_duts_tiles.pt
      extra="--init $W/backbone_duts_tiles.pt";;
    *) echo "unknown arm $arm"; exit 2;; esac
  if [ $arm = chain ]; then
    chain_repo $R/classifier_bce.pt $W/repo_cls_$arm
  else
    with_sam $W/repo_cls_$arm
    $T train-classifier --data $D --ids "$TR" --size 320 --steps 2000 $extra --out $W/cls_$arm.pt --repo $W/repo_cls_$arm
  fi
  $T evaluate --data $D --ids "$SEL" --model-repo $W/repo_cls_$arm --methods cam_threshold,cam_crf --overlays 0 --out $W/eval_cls_$arm.json
  score $W/eval_cls_$arm.json
done
