#!/bin/bash
# The CAM labels' dense CRF appearance kernel (training/cam_labels.py CRF_APPEARANCE: its weight and
# colour scale), chosen on TRAINING splits only: cam_saliency (and cam_crf) mIoU in the settings a-e of
# bench/select_cam_lib.sh (msrc_v2 n 1..5 with two classifiers of n 6..15, n 6..15, n 1..15 with a chain's
# classifier; magnetic_tile exp1)
# for each WEIGHT,COLOUR_SCALE in $SETTINGS (evaluate --cam-crf). Needs those scripts' classifiers,
# bench/select_saliency.sh's h3000 salient-object model and a chain run (CHAIN, default work/real).
# Measured (2026-12-05; CHAIN=work/real_s31; cam_saliency a / b / c / d, e: cam_crf, cam_saliency):
#   10,13 (DeepLab's, until then)  0.525 / 0.533 / 0.638 / 0.592, mt 0.182, 0.187
#   5,13                           0.537 / 0.543 / 0.644 / 0.599
#   20,13                          0.514 / 0.521 / 0.624 / 0.583
#   3,13                           0.535 / 0.540 / 0.641 / 0.597
#   1,13                           0.529 / 0.531 / 0.630 / 0.588
#   10,8                           0.532 / 0.541 / 0.640 / 0.595
#   10,20                          0.518 / 0.526 / 0.630 / 0.588
#   5,8 (taken)                    0.540 / 0.546 / 0.646 / 0.600, mt 0.201, 0.212
#   5,5                            0.541 / 0.548 / 0.646 / 0.600
# cam_crf a / b / c / d: 10,13 0.472 / 0.482 / 0.498 / 0.522; 5,8 0.480 / 0.482 / 0.503 / 0.524.
# (The figures above were taken with a one-off probe that set the same two dense_crf arguments the
# --cam-crf option now sets; this script gave the same figures for 10,13 and 5,8. 5,5 and 5,8 tie;
# 5,8 is the smaller change of the colour scale.)
# About 30 s an evaluation.
W=work/select_cam_crf
. "$(dirname "$0")/select_cam_lib.sh"
for crf in ${SETTINGS:-10,13 5,8}; do
  five_settings "${crf/,/-}" cam_crf,cam_saliency --cam-crf "$crf"
done
