#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it. Last line: `nbdev_test: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"   # 2 notebooks in parallel on 2 cores: one thread each (no oversubscription)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export MPLBACKEND=Agg TQDM_DISABLE=1 PYTHONWARNINGS=ignore
dirty() { [[ -n "$(git status --porcelain 2>/dev/null)" ]]; }
fail() { echo "$1"; echo "nbdev_test: 0 passed, ${2:-1} failed"; exit 1; }

if git rev-parse --git-dir >/dev/null 2>&1; then
  was_dirty=$(git status --porcelain)
  nbdev_clean || fail "nbdev_clean failed"
  if [[ -z "$was_dirty" ]] && dirty; then git status --short; fail "notebooks are not clean: run nbdev_clean and commit"; fi
  nbdev_export || fail "nbdev_export failed"
  if [[ -z "$was_dirty" ]] && dirty; then git status --short; git diff | head -40; fail "notebooks and package are not in sync: run nbdev_export and commit"; fi
fi

# every chapter carries the outputs of `make nbs` (a chapter without them fails), all of them under 10 MB; required once
# nbs/.outputs_required exists (NBS_OUTPUTS_REQUIRED=1/0 forces it on/off)
python .ci/nbs.py --check || fail "notebook outputs check failed"

mapfile -t nbs < <(find nbs -name '[0-9]*.ipynb' -not -path '*/_*' -not -path '*/.*' | sort)
n=${#nbs[@]}
[[ $n -gt 0 ]] || fail "no notebooks found" 0
log=$(mktemp); out=$(mktemp -d)
trap 'rm -rf "$log" "$out"' EXIT
start=$(date +%s)
timeout "${NBDEV_TEST_TIMEOUT:-1800}" nbdev_test --n_workers 2 --timing ${NBDEV_FLAGS:+--flags "$NBDEV_FLAGS"} 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
echo "nbdev_test took $(( $(date +%s) - start )) s"
failed=$(awk '/Failed On The Following Notebooks/{f=1;next} f&&/ipynb/{c++} END{print c+0}' "$log")
if [[ $rc -ne 0 && $failed -eq 0 ]]; then failed=$n; fi    # timeout or crash: count everything as failed

# the papermill path: the same notebook, headless, with a parameter override
if [[ $rc -eq 0 ]]; then
  if papermill nbs/00_core.ipynb "$out/core.ipynb" --cwd nbs --no-progress-bar -y 'overrides: [train.epochs=3, model_name=s]' >"$out/log" 2>&1 \
     && python -c "import json,sys; nb=json.load(open('$out/core.ipynb')); src=''.join(''.join(c['source']) for c in nb['cells']); outs=json.dumps(nb['cells']); sys.exit(0 if 'injected-parameters' in json.dumps([c['metadata'] for c in nb['cells']]) and \"'s', [320, 320], 0.0008\" in outs else 1)"; then
    echo "papermill run with overrides: ok"
  else
    cat "$out/log" | tail -20; echo "papermill run with overrides: FAILED"; rc=1; failed=$((failed+1))
  fi
fi
echo "nbdev_test: $((n - failed)) passed, $failed failed"
[[ $rc -eq 0 ]]
