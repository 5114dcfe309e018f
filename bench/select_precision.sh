#!/bin/bash
# Training precision (train-*'s --precision: fp32, or forward passes autocast to bf16), checked on a
# part of msrc_v2's TRAINING split as bench/select_msrc_deeplab.sh's h_scales arm (the chain's
# DeepLab recipe): a BCE classifier of 1,000 steps on n 6..15 (colour jitter 0.3, from the shared
# SimCLR backbone), DeepLab on ground truth from it, 500 steps, seeds 0 and 1, scored on n 1..5 with
# test-time augmentation; the evaluation split (n 16..20) is never touched. Each of the classifier and
# the DeepLab in fp32 or bf16 (four pairs), and the classifiers' CAM threshold. Measured (DeepLab
# seeds 0 / 1): fp32 -> fp32 0.510 / 0.518, fp32 -> bf16 0.502 / 0.511, bf16 -> fp32 0.490 / 0.493,
# bf16 -> bf16 0.474 / 0.491; CAM threshold fp32 0.447, bf16 0.440. bf16 steps are 1.3-2x faster on
# a CPU with AVX512-BF16 but lose quality here, so every training stays fp32 by default.
# Needs `bench/real_data.py` run once (work/real/shared). About 3 min a classifier, 2.5 min a DeepLab
# alone on 2 CPU cores.
W=work/select_precision
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/msrc_v2
TR='\d+_([6-9]|1[0-5])_s'
SEL='\d+_[1-5]_s'
for c in fp32 bf16; do
  with_sam $W/repo_cls_$c
  [ -f $W/cls_$c.pt ] || $T train-classifier --data $D --ids "$TR" --size 256 --steps 1000 --color-jitter 0.3 \
      --init work/real/shared/backbone_simclr.pt --precision $c --out $W/cls_$c.pt
  $T export --checkpoint $W/cls_$c.pt --repo $W/repo_cls_$c
  $T evaluate --data $D --ids "$SEL" --model-repo $W/repo_cls_$c --methods cam_threshold --overlays 0 --out $W/cam_$c.json
  score $W/cam_$c.json
done
for pair in ${PAIRS:-fp32_fp32 fp32_bf16 bf16_fp32 bf16_bf16}; do
  c=${pair%_*}; p=${pair#*_}
  dls=(); methods=""
  for s in ${SEEDS:-0 1}; do
    [ -f $W/dl_${pair}_seed$s.pt ] || $T train-deeplab --data $D --ids "$TR" --size 256 --steps 500 --seed $s --init-classifier $W/cls_$c.pt \
        --no-vflip --scales 0.75,1,1.25 --precision $p --out $W/dl_${pair}_seed$s.pt --repo $W/repo_dl_${pair}_seed$s
    dls+=(--deeplab dl_seed$s=$W/repo_dl_${pair}_seed$s); methods=$methods${methods:+,}dl_seed$s
  done
  $T evaluate --data $D --ids "$SEL" --model-repo $W/repo_cls_fp32 --methods $methods "${dls[@]}" --overlays 0 \
      --predict-scales 0.75,1,1.25 --predict-flip --out $W/eval_$pair.json
  score $W/eval_$pair.json
done
