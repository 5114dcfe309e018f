#!/bin/bash
# Every DeepLab the selections trained, scored again now that Predict runs a DeepLab at the scale it
# was trained at (config input_side): each checkpoint re-exported (its export declares the side),
# then all of a data set's scored in one evaluate pass on the same part of the TRAINING split as
# before (msrc_v2 n 1..5, magnetic_tile exp1; the evaluation splits are never touched). Do the
# choices made when the DeepLabs ran at the images' own size still hold? Needs the checkpoints of
# bench/select_msrc.sh, select_pseudo_source.sh and select_mt_*.sh (work/select_*). ~10 min.
# SETS (default "msrc mt") picks the data sets.
W=work/select_rescore
. "$(dirname "$0")/select_lib.sh"
rescore() {  # rescore NAME DATA SEL CLASSIFIER_REPO FOLDER CHECKPOINT...
  local name=$1 data=$2 sel=$3 repo=$4 folder=$5; shift 5
  local specs=() names=()
  for ck in "$@"; do
    local arm; arm=$(basename "$ck" .pt)
    rm -rf "$W/$name/$arm"
    $T export --checkpoint "$folder/$ck.pt" --repo "$W/$name/$arm" > /dev/null
    specs+=(--deeplab "$arm=$W/$name/$arm"); names+=("$arm")
  done
  $T evaluate --data "$data" --ids "$sel" --model-repo "$repo" --methods "$(IFS=,; echo "${names[*]}")" "${specs[@]}" --overlays 0 \
      --out "$W/eval_$name.json"
  score "$W/eval_$name.json"
}
for set in ${SETS:-msrc mt}; do
  case $set in
    msrc) rescore msrc ../shared/data/msrc_v2 '\d+_[1-5]_s' work/select_msrc/repo_proc work/select_msrc \
            dl_proc dl_proc_seed1 dl_proc_seed2 dl_proc1500 dl_duts dl_aug_novflip dl_aug_novflip_zoom \
            dl_pseudo_cam_threshold dl_pseudo_cam_crf dl_pseudo_pipeline dl_pseudo_consensus;;
    mt) rescore mt ../shared/data/magnetic_tile '.*_exp1_.*' work/real/magnetic_tile/repo_bce work/select_mt \
            dl_balance_cap3 dl_balance_cap3_seed1 dl_balance_cap3_seed2 dl_balance_cap5 dl_balance_cap5_seed1 dl_balance_cap5_seed2 \
            dl_balance dl_balance_cap10_seed1 dl_balance_cap10_seed2 dl_plain dl1500_balance_cap3 dl3000_balance_cap3 dl_balance_cap3_zoom \
            dl_pseudo_cam_threshold dl_pseudo_cam_threshold_seed1 dl_pseudo_cam_threshold_seed2 \
            dl_pseudo_pipeline_seed0 dl_pseudo_pipeline_seed1 dl_pseudo_pipeline_seed2;;
    *) echo "unknown set $set"; exit 2;;
  esac
done
