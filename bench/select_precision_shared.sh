#!/bin/bash
# bf16 (train-*'s --precision) for the two longest shared trainings only, the SimCLR backbone and the
# promptable model (bf16 is fastest there; bench/select_precision.sh found it costs the classifier and
# the DeepLab). Each trained again with the chain's recipe in bf16 and checked on TRAINING splits
# against the chain's fp32 models (work/real/shared); no evaluation split is touched:
# - backbone: a BCE classifier from it (1,000 steps on msrc_v2 n 6..15, colour jitter 0.3), its CAM
#   threshold on n 1..5 and DeepLab on ground truth from it (500 steps, seeds 0 and 1, test-time
#   augmentation), as bench/select_precision.sh; and magnetic_tile's classifier from it (the chain's
#   recipe on exp0-3, bench/select_mt_classifier.sh's simclr arm), CAM threshold and CAM + CRF on exp1.
# - promptable model: evaluate-promptable (box / click, class-agnostic) on magnetic_tile exp0-3's
#   defects, the domain it is used on and never trained on.
# ARMS picks the backbones (default: bf16 fp32). Needs `bench/real_data.py` run once (work/real).
# About 11 min the promptable model, 7 min the backbone, 9 min an msrc_v2 arm, 7 min a magnetic_tile
# arm, alone on 2 CPU cores. Measured (2026-12-05), fp32 of an earlier run / fp32 of the chain's
# run from nothing / bf16:
#   msrc_v2 CAM threshold (n 1..5)             0.447 / 0.473 / 0.450
#   msrc_v2 DeepLab on ground truth, seeds 0/1  0.510, 0.518 / 0.466, 0.474 / 0.493, 0.444
#   magnetic_tile CAM threshold (exp1)         0.236 / 0.174 / 0.233
#   promptable on exp0-3, box / click / click (mask 3)  0.629, 0.512, 0.531 / 0.695, 0.515, 0.539 / 0.615, 0.523, 0.535
# (the earlier runs: bench/select_precision.sh's fp32 classifier, bench/select_mt_classifier.sh's simclr
# arm and work/real_s29's promptable model). bf16 falls inside the spread of two fp32 runs on every
# check but two: one DeepLab seed (0.444) and the promptable model's boxes (0.615 against 0.629 /
# 0.695); two fp32 backbones already differ by 0.04-0.06, so these checks cannot see a smaller cost.
# It trains 1.6x (backbone: 421 s against 669) and 1.4x (promptable: 650 s against 900) faster, so
# bench/real_data.py trains these two with --precision auto (FAST_SHARED). (magnetic_tile's cam_crf
# above was scored with the CAM CRF of those days, 10,13; bench/select_cam_crf.sh changed its default.)
W=work/select_precision_shared
. "$(dirname "$0")/select_lib.sh"
S=work/real/shared
[ -f $W/promptable_bf16.pt ] || python -m training train-promptable --data ../shared/data/duts_tr --data ../shared/data/deepcrack \
    --synthetic 600 --steps 4000 --crop 192 --batch-size 10 --precision bf16 --out $W/promptable_bf16.pt --repo $W/repo_promptable_bf16
MT=../shared/data/magnetic_tile
for p in fp32 bf16; do
  repo=$S/promptable; [ $p = fp32 ] || repo=$W/repo_promptable_bf16
  [ -f $W/promptable_mt_$p.json ] || python -m training evaluate-promptable --data $MT --ids '.*_exp[0-3]_.*' --model-repo $repo \
      --out $W/promptable_mt_$p.json
  python -c "import json, sys; d = json.load(open(sys.argv[1])); print(sys.argv[1], {k: m['miou'] for k, m in d['methods'].items()})" \
      $W/promptable_mt_$p.json
done
[ -f $W/backbone_bf16.pt ] || python -m training pretrain-backbone --data ../shared/data/duts_tr --steps 1500 --precision bf16 \
    --out $W/backbone_bf16.pt
D=../shared/data/msrc_v2
TR='\d+_([6-9]|1[0-5])_s'
SEL='\d+_[1-5]_s'
for b in ${ARMS:-bf16 fp32}; do
  init=$W/backbone_bf16.pt; [ $b = fp32 ] && init=$S/backbone_simclr.pt
  with_sam $W/repo_cls_$b
  [ -f $W/cls_$b.pt ] || $T train-classifier --data $D --ids "$TR" --size 256 --steps 1000 --color-jitter 0.3 --init $init --out $W/cls_$b.pt
  $T export --checkpoint $W/cls_$b.pt --repo $W/repo_cls_$b
  $T evaluate --data $D --ids "$SEL" --model-repo $W/repo_cls_$b --methods cam_threshold --overlays 0 --out $W/cam_$b.json
  score $W/cam_$b.json
  dls=(); methods=""
  for s in 0 1; do
    [ -f $W/dl_${b}_seed$s.pt ] || $T train-deeplab --data $D --ids "$TR" --size 256 --steps 500 --seed $s --init-classifier $W/cls_$b.pt \
        --no-vflip --scales 0.75,1,1.25 --out $W/dl_${b}_seed$s.pt --repo $W/repo_dl_${b}_seed$s
    dls+=(--deeplab dl_seed$s=$W/repo_dl_${b}_seed$s); methods=$methods${methods:+,}dl_seed$s
  done
  $T evaluate --data $D --ids "$SEL" --model-repo $W/repo_cls_$b --methods $methods "${dls[@]}" --overlays 0 \
      --predict-scales 0.75,1,1.25 --predict-flip --out $W/eval_dl_$b.json
  score $W/eval_dl_$b.json
  with_sam $W/repo_mt_$b
  [ -f $W/mt_$b.pt ] || $T train-classifier --data $MT --ids '.*_exp[0-3]_.*' --size 320 --steps 2000 --init $init --out $W/mt_$b.pt
  $T export --checkpoint $W/mt_$b.pt --repo $W/repo_mt_$b
  $T evaluate --data $MT --ids '.*_exp1_.*' --model-repo $W/repo_mt_$b --methods cam_threshold,cam_crf --overlays 0 --out $W/eval_mt_$b.json
  PER_CLASS=1 score $W/eval_mt_$b.json
done
