# Sourced by the bench/select_mt_*.sh scripts: select_lib.sh with W=work/select_mt and per-class
# scores, and magnetic_tile's folders and split parts: R (the chain's work folder), D (the data),
# TR_ALL (the training split exp0-3), TR_BUT_SEL (exp0, 2, 3) and SEL (exp1, where choices are scored).
W=work/select_mt PER_CLASS=${PER_CLASS:-1}
. "$(dirname "${BASH_SOURCE[0]}")/select_lib.sh"
R=${R:-work/real/magnetic_tile}  # R=work/real_s31/magnetic_tile FROM_TAG=simclr_sharedbf16: a later chain's classifier
D=../shared/data/magnetic_tile
TR_ALL='.*_exp[0-3]_.*'
TR_BUT_SEL='.*_exp[023]_.*'
SEL='.*_exp1_.*'
# chain_repo CKPT REPO: a fresh repository holding the chain's checkpoint CKPT and the shared
# promptable model, so a script scores the classifier it names (the chain's own repo_* hold
# whichever recipe the chain ran last)
chain_repo() { with_sam "$2"; $T export --checkpoint "$1" --repo "$2" > /dev/null; }
