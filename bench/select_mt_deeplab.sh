#!/bin/bash
# DeepLab's class balancing on magnetic_tile, chosen on a part of its TRAINING split: train on
# exp0, exp2, exp3 (ground truth, 500 steps from the BCE classifier of bench/real_data.py), score
# on exp1; the evaluation split exp4 is never touched. Arms: rare class sampling + class-weighted
# loss (--balance; balance_capN: class weights capped at N instead of 10; balance_cap3_scales: also a
# window scale per batch, --scales 0.75,1,1.25) vs plain. STEPS (default
# 500) sets the steps, SEED (default 0) the seed (a run's spread), FROM (default: the chain's BCE
# classifier) another starting classifier whose name FROM_TAG adds to the files (e.g. FROM=
# work/select_mt/cls_simclr.pt FROM_TAG=simclr, bench/select_mt_classifier.sh). Needs `bench/real_data.py
# magnetic_tile` run once before. An arm's DeepLab already trained is reused; TTA=1 scores it with
# test-time augmentation (evaluate --predict-scales 0.75,1,1.25 --predict-flip; eval_*_tta.json): the
# chain's recipe (FROM=work/real/magnetic_tile/classifier_bce_simclr.pt FROM_TAG=chain_simclr
# ARMS=balance_cap3 STEPS=3000) scored 0.584 plain, 0.606 so (SEED=1: 0.617); balance_cap3_scales 0.588
# plain, 0.640 so (SEED=1: 0.661): the chain's since the seventh stop.
# ~3 min an arm at 500 steps alone on 2 CPU cores.
. "$(dirname "$0")/select_mt_lib.sh"
TR=$TR_BUT_SEL
for arm in ${ARMS:-balance plain balance_cap3}; do
  case $arm in plain) extra="";; balance) extra="--balance";;
    balance_cap3_scales) extra="--balance --max-class-weight 3 --scales 0.75,1,1.25";;
    balance_cap*) extra="--balance --max-class-weight ${arm#balance_cap}";; *) echo "unknown arm $arm"; exit 2;; esac
  S=${STEPS:-500}; tag=_$arm; [ "$S" = 500 ] || tag=${S}_$arm  # dl_<arm>.pt, dl1500_<arm>.pt, ...
  [ "${SEED:-0}" = 0 ] || tag=${tag}_seed$SEED
  [ -z "${FROM_TAG:-}" ] || tag=${tag}_from_$FROM_TAG
  [ -f $W/dl$tag.pt ] || $T train-deeplab --data $D --ids "$TR" --size 320 --steps $S --seed ${SEED:-0} --init-classifier ${FROM:-$R/classifier_bce.pt} $extra \
      --out $W/dl$tag.pt --repo $W/repo_dl$tag
  $T evaluate --data $D --ids "$SEL" --model-repo $R/repo_bce --methods dl --deeplab dl=$W/repo_dl$tag --overlays 0 "${TTA_ARGS[@]}" \
      --out $W/eval_dl$tag$TTA_TAG.json
  score $W/eval_dl$tag$TTA_TAG.json
done
