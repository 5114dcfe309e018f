#!/bin/bash
# DeepLab's augmentation for msrc_v2, chosen on its TRAINING split: ground truth of n 6..15, 500 steps
# from the classifier of `bench/select_msrc.sh` (run it first), scored on n 1..5; n 16..20 untouched.
# Arms (ARMS=...): vflip (as before: random vertical flips), novflip (none: scenes have an up and a
# down), novflip_zoom (none, and each batch zoomed by 0.7..1.4), zoom (flips as before, zoomed).
# ~4 min an arm alone on 2 CPU cores.
W=work/select_msrc
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/msrc_v2
TR='\d+_([6-9]|1[0-5])_s'
SEL='\d+_[1-5]_s'
for arm in ${ARMS:-vflip novflip novflip_zoom zoom}; do
  case $arm in vflip) extra="";; novflip) extra="--no-vertical-flip";; novflip_zoom) extra="--no-vertical-flip --zoom 0.7 1.4";;
    zoom) extra="--zoom 0.7 1.4";; *) echo "unknown arm $arm"; exit 2;; esac
  $T train-deeplab --data $D --ids "$TR" --size 256 --steps ${STEPS:-500} $extra --init-classifier $W/cls_proc.pt \
      --out $W/dl_aug_$arm.pt --repo $W/repo_dl_aug_$arm
  $T evaluate --data $D --ids "$SEL" --model-repo $W/repo_proc --methods dl --deeplab dl=$W/repo_dl_aug_$arm --overlays 0 \
      --out $W/eval_dl_aug_$arm.json
  score $W/eval_dl_aug_$arm.json
done
