# Sourced by bench/select_cam_crf.sh and bench/select_cam_random_walk.sh (after setting W): select_lib.sh,
# and five_settings NAME METHODS [evaluate options...], which scores the evaluate METHODS in five
# settings, all on TRAINING splits, into $W/<setting>_NAME.json and prints them:
#   a) msrc_v2 n 1..5 with the BCE classifier trained on n 6..15 (bench/select_msrc_pseudo_classifier.sh's)
#   b) the same images with that script's SSC classifier, seed 0
#   c) msrc_v2 n 6..15 (the images that BCE classifier trained on: the pseudo-labelling setting)
#   d) msrc_v2 n 1..15 with a bench/real_data.py chain's SSC classifier and salient-object model ($CHAIN)
#   e) magnetic_tile exp1 with that chain's magnetic_tile SSC classifier (trained on exp0-3)
# a-c use bench/select_saliency.sh's h3000 salient-object model. CHAIN: a chain's work root (default work/real).
. "$(dirname "${BASH_SOURCE[0]}")/select_lib.sh"
M=../shared/data/msrc_v2
P=work/select_msrc_pseudo_classifier
SAL=work/select_saliency/repo_h3000
CHAIN=${CHAIN:-work/real}
CSAL=$(ls -d "$CHAIN"/shared/saliency_*steps* | grep -v '\.pt$' | head -1)
five_settings() {
  local n=$1 methods=$2
  shift 2
  local common=(--methods "$methods" --stuff-agreement 1.0 --overlays 0 "$@")
  $T evaluate --data $M --ids '\d+_[1-5]_s' --model-repo $P/repo_bce --saliency $SAL "${common[@]}" --out "$W/a_$n.json"
  $T evaluate --data $M --ids '\d+_[1-5]_s' --model-repo $P/repo_ssc_seed0 --saliency $SAL "${common[@]}" --out "$W/b_$n.json"
  $T evaluate --data $M --ids '\d+_([6-9]|1[0-5])_s' --model-repo $P/repo_bce --saliency $SAL "${common[@]}" --out "$W/c_$n.json"
  $T evaluate --data $M --ids '\d+_([1-9]|1[0-5])_s' --model-repo "$CHAIN"/msrc_v2/repo_ssc --saliency "$CSAL" "${common[@]}" --out "$W/d_$n.json"
  $T evaluate --data ../shared/data/magnetic_tile --ids '.*_exp1_.*' --model-repo "$CHAIN"/magnetic_tile/repo_ssc --saliency "$CSAL" \
      "${common[@]}" --out "$W/e_$n.json"
  for s in a b c d e; do score "$W/${s}_$n.json"; done
}
