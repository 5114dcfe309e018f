#!/bin/bash
# The CAM random walk (service/pipeline/cam_random_walk.py RANDOM_WALK: affinity power BETA and STEPS) and where
# it helps, chosen on TRAINING splits only, in the settings a-e of bench/select_cam_lib.sh (those of
# bench/select_cam_crf.sh: msrc_v2 n 1..5 with two classifiers of n 6..15, n 6..15, n 1..15 with a chain's
# classifier; magnetic_tile exp1)
# for each BETA,STEPS in $SETTINGS (evaluate --random-walk): cam_rw and cam_rw_saliency against the
# plain cam_threshold and cam_saliency. Needs the classifiers and chain of bench/select_cam_crf.sh.
# Measured (2026-12-05; CHAIN=work/real_s31; a / b / c / d / e):
#   cam_threshold (plain)        0.447 / 0.438 / 0.447 / 0.459 / 0.230
#   cam_rw 32,4                  0.508 / 0.500 / 0.492 / 0.534 / 0.240
#   cam_rw 64,8 (taken)          0.508 / 0.499 / 0.493 / 0.536 / 0.243
#   cam_saliency (plain)         0.540 / 0.546 / 0.646 / 0.600 / 0.212
#   cam_rw_saliency 32,4         0.571 / 0.558 / 0.632 / 0.591 / 0.243
#   cam_rw_saliency 64,8 (taken) 0.572 / 0.561 / 0.634 / 0.599 / 0.238
# The walk lifts the CAM threshold everywhere (+0.045..+0.077 on msrc_v2, +0.013 on magnetic_tile), and
# cam_saliency on images the classifier did not train on (a, b: +0.015..+0.032), not on msrc_v2's images
# it trained on (c, d: -0.012, -0.001), where the chain makes its pseudo-labels. On a alone (a one-off
# probe that set the same two arguments), cam_rw with 8,4 / 16,4 / 4,2 / 16,8 / 32,8 / 64,4 / 32,2 / 128,8:
# 0.472 / 0.509 / 0.478 / 0.481 / 0.498 / 0.498 / 0.507 / 0.490.
# Whether DeepLab learns better from them: bench/select_msrc_pseudo_classifier.sh SOURCE=cam_rw_saliency and
# bench/select_mt_pseudo.sh SOURCES=cam_rw (their headers): it does not.
# About 30 s an evaluation.
W=work/select_cam_random_walk
. "$(dirname "$0")/select_cam_lib.sh"
for rw in ${SETTINGS:-32,4 64,8}; do
  five_settings "${rw/,/-}" cam_threshold,cam_rw,cam_saliency,cam_rw_saliency --random-walk "$rw"
done
