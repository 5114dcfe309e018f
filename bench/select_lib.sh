# Sourced by the bench/select_*.sh scripts (choices made on a part of a data set's training split):
# stops at the first failure, runs from the repository root in its virtual environment, sets W
# (the script's work folder, created) and T (the toolkit, its trainings in $PRECISION), and defines
#   score FILE      print an evaluate report's mIoU per method (per class too with PER_CLASS=1)
#   pseudo_score FILE  print a pseudo-label summary's mean image mIoU against the ground truth
#   with_sam REPO   a fresh model repository holding only the shared promptable model
# and, with TTA=1 in the environment, TTA_ARGS (evaluate's test-time augmentation: three scales and
# mirrors) and TTA_TAG (_tta, for the report's file name); both empty otherwise.
set -e
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. .venv/bin/activate
W=${W:?set W, the work folder, before sourcing select_lib.sh}
# PRECISION: each training's --precision (fp32 when unset: the figures these scripts record were trained
# so; bf16 is what bench/real_data.py runs on a CPU with native bf16). Another than fp32 works in
# ${W}_$PRECISION, so no checkpoint trained otherwise is reused.
PRECISION=${PRECISION:-fp32}
[ "$PRECISION" = fp32 ] || W=${W}_$PRECISION
toolkit() {
  case $1 in
    train-classifier|train-deeplab|train-promptable|pretrain-backbone) python -m training "$1" --precision "$PRECISION" "${@:2}";;
    *) python -m training "$@";;
  esac
}
T=toolkit
mkdir -p "$W"
score() {
  python -c "import json, sys; d = json.load(open(sys.argv[1])); pc = sys.argv[2] == '1'
print(sys.argv[1], {k: (m['miou'], m['per_class']) if pc else m['miou'] for k, m in d['methods'].items()})" "$1" "${PER_CLASS:-0}"
}
pseudo_score() {
  python -c "import json,sys; d=json.load(open(sys.argv[1])); v=[i['miou_vs_ground_truth'] for i in d['per_image'].values()]; print(sys.argv[1], 'mean image mIoU', round(sum(v)/len(v), 4))" "$1"
}
TTA_ARGS=(); TTA_TAG=""
if [ "${TTA:-0}" = 1 ]; then TTA_ARGS=(--predict-scales 0.75,1,1.25 --predict-flip); TTA_TAG=_tta; fi
with_sam() { rm -rf "$1"; mkdir -p "$1"; cp -r work/real/shared/promptable/sam_encoder work/real/shared/promptable/sam_decoder "$1"/; }
