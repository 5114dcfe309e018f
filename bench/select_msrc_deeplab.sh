#!/bin/bash
# msrc_v2's DeepLab augmentation, chosen on a part of its TRAINING split: DeepLab trains on the ground
# truth of n 6..15 (200 images) and is scored on n 1..5 (100 images); the evaluation split (n 16..20)
# is never touched. It starts from a BCE classifier of 1,000 steps on n 6..15 (colour jitter 0.3, from
# the shared SimCLR backbone, as the chain's). Arms (train-deeplab's options): hv = flips both ways
# (the default), h = horizontal flips only (--no-vflip: photographs have an up and a down), h_scales =
# also a window scale per batch (--scales 0.75,1,1.25). 500 steps, seeds 0 and 1 (seeds alone moved
# DeepLab by up to 0.04 before). Measured (seeds 0 / 1): hv 0.409 / 0.442, h 0.472 / 0.461,
# h_scales 0.479 / 0.483 (the chain's since the sixth stop). STEPS=N trains N steps instead of 500
# (checkpoints named so): ARMS=h_scales STEPS=1000 scored 0.458 / 0.493, no gain for twice the
# time, so the chain keeps 500. Two more arms, neither taken: h_scales_jitter (also --color-jitter 0.3)
# 0.460 / 0.475, h_wide (scales 0.5..1.5) 0.468 / 0.463. TTA=1 scores the arms' DeepLabs with test-time
# augmentation (evaluate --predict-scales 0.75,1,1.25 --predict-flip; eval_<arm>_tta.json): h_scales
# 0.510 / 0.518 (the msrc_v2 chain's since the seventh stop), hv 0.416 / 0.434. h_scales_320: h_scales at the images'
# own size (--size 320 instead of 256, the same 160 px windows), with TTA 0.483 / 0.487: not taken.
# h_scales_bal3: h_scales with --balance --max-class-weight 3 (images drawn by the classes they hold, half the
# windows on a labelled pixel, rare classes weighted up to 3x), with TTA 0.488 / 0.493: not taken. h_scales_sscinit: h_scales
# started from bench/select_msrc_pseudo_classifier.sh's SSC classifier (seed 0; the chain's pseudo-label DeepLab starts from its
# SSC classifier, its upper bound from the BCE one), with TTA 0.500 / 0.506 (2026-12-05): not taken. A checkpoint already made (the classifier, an arm's DeepLab) is reused. Needs `bench/real_data.py` run once (work/real/shared).
# About 3 min a classifier, 2.5 min a DeepLab, alone on 2 CPU cores.
W=work/select_msrc_deeplab
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/msrc_v2
TR='\d+_([6-9]|1[0-5])_s'
SEL='\d+_[1-5]_s'
with_sam $W/repo_cls
[ -f $W/cls.pt ] || $T train-classifier --data $D --ids "$TR" --size 256 --steps 1000 --color-jitter 0.3 \
    --init work/real/shared/backbone_simclr.pt --out $W/cls.pt
$T export --checkpoint $W/cls.pt --repo $W/repo_cls
for arm in ${ARMS:-hv h h_scales}; do
  size=256
  init=$W/cls.pt
  case $arm in
    hv) aug=();;
    h) aug=(--no-vflip);;
    h_scales) aug=(--no-vflip --scales 0.75,1,1.25);;
    h_scales_jitter) aug=(--no-vflip --scales 0.75,1,1.25 --color-jitter 0.3);;
    h_wide) aug=(--no-vflip --scales 0.5,0.75,1,1.25,1.5);;
    h_scales_320) aug=(--no-vflip --scales 0.75,1,1.25); size=320;;
    h_scales_bal3) aug=(--no-vflip --scales 0.75,1,1.25 --balance --max-class-weight 3);;
    h_scales_sscinit) aug=(--no-vflip --scales 0.75,1,1.25); init=work/select_msrc_pseudo_classifier/cls_ssc_seed0.pt;;
    *) echo "unknown arm $arm"; exit 2;;
  esac
  steps=${STEPS:-500}
  tag=$arm; [ "$steps" = 500 ] || tag=${arm}_${steps}steps
  dls=(); methods=""
  for s in ${SEEDS:-0 1}; do
    [ -f $W/dl_${tag}_seed$s.pt ] || $T train-deeplab --data $D --ids "$TR" --size $size --steps $steps --seed $s --init-classifier $init "${aug[@]}" \
        --out $W/dl_${tag}_seed$s.pt --repo $W/repo_dl_${tag}_seed$s
    dls+=(--deeplab dl_seed$s=$W/repo_dl_${tag}_seed$s); methods=$methods${methods:+,}dl_seed$s
  done
  $T evaluate --data $D --ids "$SEL" --model-repo $W/repo_cls --methods $methods "${dls[@]}" --overlays 0 "${TTA_ARGS[@]}" --out $W/eval_$tag$TTA_TAG.json
  score $W/eval_$tag$TTA_TAG.json
done
