#!/bin/bash
# The salient-object model's starting backbone (cam_saliency's object/stuff split), chosen on a part
# of msrc_v2's TRAINING split: the SimCLR arm's BCE classifier of bench/select_msrc_backbone.sh
# (n 6..15) gives the CAMs, each salient-object model (1,200 DeepLab steps on duts_tr's masks, as
# the chain's shared step) splits them, cam_saliency is scored on n 1..5; the evaluation split
# (n 16..20) is never touched. Arms: proc (the shared model of bench/real_data.py, from the
# procedural pretraining), simclr (from the SimCLR backbone of the shared steps). Needs
# bench/real_data.py msrc_v2 and bench/select_msrc_backbone.sh (ARMS=simclr) run once before.
# About 5 min for the simclr arm, 1 min for proc, alone on 2 CPU cores.
W=work/select_msrc_saliency
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/msrc_v2
SEL='\d+_[1-5]_s'
for arm in ${ARMS:-proc simclr}; do
  case $arm in
    proc) sal=work/real/shared/saliency;;
    simclr) sal=$W/saliency_simclr
      [ -d $sal ] || $T train-deeplab --data ../shared/data/duts_tr --size 256 --steps 1200 \
          --init-classifier work/real/shared/backbone_simclr.pt --out $W/saliency_simclr.pt --repo $sal;;
    *) echo "unknown arm $arm"; exit 2;;
  esac
  $T evaluate --data $D --ids "$SEL" --model-repo work/select_msrc_backbone/repo_simclr --methods cam_threshold,cam_saliency \
      --saliency $sal --overlays 0 --out $W/eval_$arm.json --stuff-agreement 1.0
  score $W/eval_$arm.json
done
