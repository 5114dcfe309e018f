# Sourced by the bench/select_*.sh scripts (choices made on a part of a data set's training split):
# stops at the first failure, runs from the repository root in its virtual environment, sets W
# (the script's work folder, created) and T (the toolkit), and defines
#   score FILE      print an evaluate report's mIoU per method (per class too with PER_CLASS=1)
#   with_sam REPO   a fresh model repository holding only the shared promptable model
set -e
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. .venv/bin/activate
T="python -m training"
W=${W:?set W, the work folder, before sourcing select_lib.sh}
mkdir -p "$W"
score() {
  python -c "import json, sys; d = json.load(open(sys.argv[1])); pc = sys.argv[2] == '1'
print(sys.argv[1], {k: (m['miou'], m['per_class']) if pc else m['miou'] for k, m in d['methods'].items()})" "$1" "${PER_CLASS:-0}"
}
with_sam() { rm -rf "$1"; mkdir -p "$1"; cp -r work/real/shared/promptable/sam_encoder work/real/shared/promptable/sam_decoder "$1"/; }
