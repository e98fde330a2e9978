#!/usr/bin/env bash
# The README's test command. From the repository root:
#   1. R CMD build (vignettes included) -> iclv_<version>.tar.gz
#   2. R CMD check of that tarball twice: with CUDA compiled in (when nvcc is
#      found; GPU tests skip with a reason when no GPU is usable) and with
#      ICLV_CUDA=no (CPU backend only). Any ERROR or WARNING fails.
#   3. The testthat suite against each of the two checked installations,
#      counted together; the last line printed is "N passed, N failed, N skipped".
# Exits non-zero on any failure. Outputs go to ci-out/.
# Every program it calls is installed by the README's test command (see
# .ci/run); a missing one fails here, by name, before anything runs.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. "$root/tools/require-programs.sh"
require_programs run-tests.sh R Rscript gcc make tar gzip pandoc qpdf grep sed tee ldd readlink mktemp
out="$root/ci-out"
rm -rf "$out"; mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export _R_CHECK_FORCE_SUGGESTS_=false
status=0

echo "== R CMD build"
(cd "$out" && R CMD build "$root") > "$out/build.log" 2>&1 || { cat "$out/build.log"; echo "0 passed, 1 failed"; exit 1; }
tarball=$(ls "$out"/iclv_*.tar.gz | head -n 1)
echo "built $(basename "$tarball")"

check_one() { # label, then environment assignments
  label=$1; shift
  echo "== R CMD check ($label)"
  mkdir -p "$out/$label"
  env "$@" R CMD check --no-manual --no-tests -o "$out/$label" "$tarball" > "$out/$label/check.log" 2>&1
  rc=$?
  grep -E "configure: iclv builds" "$out/$label/iclv.Rcheck/00install.out" || true
  grep -E "^(Status|\* checking .*\.\.\. (NOTE|WARNING|ERROR))" "$out/$label/check.log" || true
  if [ $rc -ne 0 ] || grep -qE "^Status: .*(ERROR|WARNING)" "$out/$label/check.log"; then
    echo "R CMD check ($label) failed:"; tail -n 60 "$out/$label/check.log"
    status=1
  fi
}
check_one cuda ICLV_CUDA=yes
check_one cpu ICLV_CUDA=no

passed=0; failed=0; skipped=0
for label in cuda cpu; do
  lib="$out/$label/iclv.Rcheck"
  if [ ! -d "$lib/iclv" ]; then echo "no installed package for $label"; failed=$((failed + 1)); status=1; continue; fi
  echo "== testthat ($label build)"
  expect=no
  if grep -q "builds the CPU and CUDA backends" "$lib/00install.out"; then expect=yes; fi
  ICLV_TEST_EXPECT_CUDA=$expect Rscript tools/run-testthat.R "$lib" "$out/$label/counts.txt" 2>&1 | tee "$out/$label/tests.log"
  if [ -f "$out/$label/counts.txt" ]; then
    read p f s < "$out/$label/counts.txt"
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  else
    echo "testthat ($label) did not finish"; failed=$((failed + 1))
  fi
done
echo "== sanitizers (ASan + UBSan on the C core, CPU build, a subset of the tests)"
if ICLV_SAN_DIR="$out/sanitize" bash tools/sanitize.sh > "$out/sanitize.log" 2>&1; then
  tail -n 3 "$out/sanitize.log"
else
  tail -n 40 "$out/sanitize.log"; echo "tools/sanitize.sh failed"; failed=$((failed + 1)); status=1
fi
[ $failed -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
