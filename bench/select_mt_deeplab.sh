#!/bin/bash
# DeepLab's class balancing on magnetic_tile, chosen on a part of its TRAINING split: train on
# exp0, exp2, exp3 (ground truth, 500 steps from the BCE classifier of bench/real_data.py), score
# on exp1; the evaluation split exp4 is never touched. Arms: rare class sampling + class-weighted
# loss (--balance; balance_capN: class weights capped at N instead of 10) vs plain; balance_cap3_zoom:
# cap 3 with each batch zoomed by 0.7..2 (DeepLab predicts at the image's own size, 103..632 px, but
# trains on images letterboxed to 320 px). STEPS (default 500) sets the steps. Needs
# `bench/real_data.py magnetic_tile` run once before. ~8 min an arm alone on 2 CPU cores.
W=work/select_mt PER_CLASS=1
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/magnetic_tile
TR='.*_exp[023]_.*'
SEL='.*_exp1_.*'
for arm in ${ARMS:-balance plain balance_cap3}; do
  case $arm in plain) extra="";; balance) extra="--balance";; balance_cap3_zoom) extra="--balance --max-class-weight 3 --zoom 0.7 2";;
    balance_cap*) extra="--balance --max-class-weight ${arm#balance_cap}";; *) echo "unknown arm $arm"; exit 2;; esac
  S=${STEPS:-500}; tag=_$arm; [ "$S" = 500 ] || tag=${S}_$arm  # dl_<arm>.pt, dl1500_<arm>.pt, ...
  $T train-deeplab --data $D --ids "$TR" --size 320 --steps $S --init-classifier work/real/magnetic_tile/classifier_bce.pt $extra \
      --out $W/dl$tag.pt --repo $W/repo_dl$tag
  $T evaluate --data $D --ids "$SEL" --model-repo work/real/magnetic_tile/repo_bce --methods dl --deeplab dl=$W/repo_dl$tag --overlays 0 \
      --out $W/eval_dl$tag.json
  score $W/eval_dl$tag.json
done
