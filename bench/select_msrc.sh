#!/bin/bash
# Choices for the msrc_v2 chain made on a part of its TRAINING split: train on n 6..15 (200 images),
# score on n 1..5 (100 images); the evaluation split (n 16..20) is never touched. docs/RESULTS.md
# reports what each printed. About 1.5 h on 2 CPU cores; needs `bench/real_data.py msrc_v2` run
# once before (the procedural pretraining and the promptable model in work/real/shared).
#   1. backbone: procedural pretraining alone vs + 1,200 DeepLab steps on duts_tr saliency
#   2. S2C losses: 600 more steps of BCE (control), of BCE + SSC, of BCE + SSC + CPM
#   3. DeepLab on ground truth: 500 vs 1,500 steps
W=work/select_msrc
. "$(dirname "$0")/select_lib.sh"
D=../shared/data/msrc_v2
TR='\d+_([6-9]|1[0-5])_s'
SEL='\d+_[1-5]_s'
SHARED=work/real/shared

# 1. backbone
$T train-deeplab --data ../shared/data/duts_tr --size 256 --steps 1200 --init-classifier $SHARED/pretrain_classifier.pt --out $W/deeplab_duts.pt
for arm in proc duts; do
  init=$SHARED/pretrain_classifier.pt; [ $arm = duts ] && init=$W/deeplab_duts.pt
  with_sam $W/repo_$arm
  $T train-classifier --data $D --ids "$TR" --size 256 --steps 1000 --init $init --out $W/cls_$arm.pt --repo $W/repo_$arm
  $T train-deeplab --data $D --ids "$TR" --size 256 --steps 500 --init-classifier $W/cls_$arm.pt --out $W/dl_$arm.pt --repo $W/repo_dl_$arm
  $T evaluate --data $D --ids "$SEL" --model-repo $W/repo_$arm --methods cam_threshold,dl --deeplab dl=$W/repo_dl_$arm --overlays 0 --out $W/eval_$arm.json
  score $W/eval_$arm.json
done

# 2. S2C losses, each from the same BCE classifier
for v in bce ssc ssc_cpm; do
  R=$W/repo_s2c_$v; with_sam $R
  case $v in bce) extra="";; ssc) extra="--s2c $R --s2c-losses ssc";; ssc_cpm) extra="--s2c $R --s2c-losses ssc,cpm";; esac
  $T train-classifier --data $D --ids "$TR" --size 256 --steps 600 --init $W/cls_proc.pt $extra --cpm-warmup 0 --cpm-refresh 300 \
      --se-cache work/real/se_cache --out $W/cls_s2c_$v.pt --repo $R
  $T evaluate --data $D --ids "$SEL" --model-repo $R --methods cam_threshold,s2c --stuff-agreement 1.0 --overlays 0 --out $W/eval_s2c_$v.json
  score $W/eval_s2c_$v.json
done

# 3. DeepLab steps
$T train-deeplab --data $D --ids "$TR" --size 256 --steps 1500 --init-classifier $W/cls_proc.pt --out $W/dl_proc1500.pt --repo $W/repo_dl_proc1500
$T evaluate --data $D --ids "$SEL" --model-repo $W/repo_proc --methods dl --deeplab dl=$W/repo_dl_proc1500 --overlays 0 --out $W/eval_proc1500.json
score $W/eval_proc1500.json
