#!/bin/bash
# magnetic_tile's CAM-label CRF appearance kernel (bench/real_data.py Config.cam_crf), chosen on its TRAINING
# split only: exp1 with the chain's classifier (setting e of bench/select_cam_lib.sh), cam_crf, cam_saliency and
# cam_rw_saliency for each WEIGHT,COLOUR_SCALE in $SETTINGS (evaluate --cam-crf). CHAIN: a chain's work root.
# Measured (2026-12-05; CHAIN=work/real_s31; cam_crf / cam_saliency / cam_rw_saliency):
#   5,8 (msrc_v2's, the default)  0.201 / 0.212 / 0.238   (bench/select_cam_crf.sh, bench/select_cam_random_walk.sh)
#   8,8                           cam_rw_saliency 0.226    (5,13: 0.235; 5,5: 0.241; from the five settings of select_cam_lib.sh)
#   3,8                           0.220 / 0.225 / 0.263    (3,5: 0.221 / 0.227 / 0.266; 3,13: 0.219 / 0.221 / 0.262)
#   2,8                           0.232 / 0.238 / 0.276
#   1,8                           0.238 / 0.260 / 0.295    (1,4: 0.239 / 0.260 / 0.295; 1,13: 0.238 / 0.259 / 0.295)
#   0.5,8 (taken)                 0.236 / 0.268 / 0.300
#   0.2,8                         0.235 / 0.272 / 0.301
# The lighter the colour kernel, the better, to a plateau below 1: it no longer pulls thin defects into the
# tile's texture (the smoothness kernel stays). On msrc_v2 (a-d of select_cam_lib.sh) cam_rw_saliency is flat
# from 3,8 to 8,8 (0.571 / 0.557 / 0.632 / 0.598 at 3,8 against 0.572 / 0.561 / 0.634 / 0.599 at 5,8): it keeps 5,8.
# About 60 s a setting.
W=work/select_mt_cam_crf
. "$(dirname "$0")/select_cam_lib.sh"
for crf in ${SETTINGS:-5,8 0.5,8}; do
  $T evaluate --data ../shared/data/magnetic_tile --ids '.*_exp1_.*' --model-repo "$CHAIN"/magnetic_tile/repo_ssc --saliency "$CSAL" \
      --methods cam_crf,cam_saliency,cam_rw_saliency --stuff-agreement 1.0 --overlays 0 --cam-crf "$crf" --out "$W/e_${crf/,/-}.json"
  score "$W/e_${crf/,/-}.json"
done
