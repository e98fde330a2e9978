#!/usr/bin/env bash
# Builds iclv's C core with AddressSanitizer + UndefinedBehaviorSanitizer
# into a temporary library and runs a subset of the testthat suite against it.
#
#   tools/sanitize.sh [TEST_FILTER]
#
# TEST_FILTER is a regular expression over test file names without "test-"
# and ".R" (default: the files that exercise the C core: engine, the fast
# CPU kernels (engine-fast), draws, compile, numerics, memory, battery, the
# choice kernels (choice-kernels, nested-logit), the structural terms of
# lavaan's ~~ and ~ 1 (lvstat), random terms, weights and expression
# utilities, and the estimation paths through it: estimate, methods,
# simulate, validate, identify; about 2.5 minutes on 2 cores, of which ~15 s
# is the instrumented build). R itself is not instrumented, so the ASan runtime is preloaded
# (LD_PRELOAD) into Rscript; leak detection is off (R's own allocations would
# drown the report; engine leaks are covered by tests/testthat/test-memory.R);
# allocator_may_return_null=1 lets a refused huge calloc return NULL as glibc
# does (the battery checks that iclv turns it into iclv_error_memory).
#
# Before the package it checks the harness on a canary: a 4-byte heap
# overflow in a tiny shared object, loaded the same way, must be reported by
# ASan and must make R exit non-zero; an integer overflow must be reported by
# UBSan. If not, the sanitizers are not working here and the script fails.
#
# Exit status: 0 when the build succeeds, the canaries are caught, every test
# passes and no sanitizer report appears; non-zero otherwise. Logs and the
# temporary library live in $ICLV_SAN_DIR (default: a fresh mktemp -d),
# which is kept on failure and removed on success.
# Needs: gcc with libasan/libubsan (gcc 12 here), R, make, and the base
# tools tar, grep, sed, ldd, readlink, mktemp (checked first). CUDA is off.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/tools/require-programs.sh"
require_programs sanitize.sh R Rscript gcc make tar grep sed tr ldd readlink mktemp date
filter=${1:-"^(engine|engine-fast|draws|compile|numerics|memory|battery|estimate|methods|simulate|validate|choice-kernels|choice-parts|nested-logit|lvstat|random|weights|expr|tape|indicator-syntax|constraints|identify)$"}
work=${ICLV_SAN_DIR:-$(mktemp -d /tmp/iclv-sanitize.XXXXXX)}
mkdir -p "$work"
src="$work/src-tree"; lib="$work/lib"; mkdir -p "$lib"
san_flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

say() { printf '== %s\n' "$*"; }
fail() { printf 'sanitize.sh: FAILED: %s (logs in %s)\n' "$*" "$work"; exit 1; }

libasan=$(gcc -print-file-name=libasan.so)
[ -f "$libasan" ] || fail "gcc has no libasan.so ($libasan)"
libasan=$(readlink -f "$libasan")

# The user Makevars: only this build sees it (R_MAKEVARS_USER).
makevars="$work/Makevars"
cat > "$makevars" <<EOF
CFLAGS = -g -O1 $san_flags
CXXFLAGS = -g -O1 $san_flags
LDFLAGS = $san_flags
EOF

export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:allow_user_segv_handler=1:detect_odr_violation=0:print_summary=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export ICLV_SANITIZER=asan,ubsan
export ICLV_CUDA=no

# R run with the ASan runtime preloaded: san_R <Rscript args...>
san_R() { LD_PRELOAD="$libasan" Rscript --vanilla "$@"; }

has_report() { grep -qE "ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer" "$1"; }

# ---- 1. canaries ------------------------------------------------------------
say "canary: the harness must catch a heap overflow and an integer overflow"
canary="$work/canary"; mkdir -p "$canary"
cat > "$canary/canary.c" <<'EOF'
#include <stdlib.h>
#include <limits.h>
#include <R.h>
#include <Rinternals.h>
SEXP canary_heap(void) { volatile int *p = malloc(4 * sizeof(int)); int v = p[4]; free((void *) p); return Rf_ScalarInteger(v); }
SEXP canary_ub(SEXP x) { int a = Rf_asInteger(x); int b = a + INT_MAX; return Rf_ScalarInteger(b); }
EOF
(cd "$canary" && R_MAKEVARS_USER="$makevars" R CMD SHLIB -o canary.so canary.c) > "$canary/build.log" 2>&1 ||
  { cat "$canary/build.log"; fail "could not build the canary"; }
for what in heap ub; do
  if [ $what = heap ]; then call='.Call("canary_heap")'; else call='.Call("canary_ub", 5L)'; fi
  san_R -e "dyn.load('$canary/canary.so'); invisible($call); cat('canary survived\n')" > "$canary/$what.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ] || ! has_report "$canary/$what.log"; then
    cat "$canary/$what.log"; fail "the $what canary was not caught (rc $rc): the sanitizers do not work here"
  fi
  echo "   $what canary caught (R exited with $rc)"
done

# ---- 2. build -------------------------------------------------------------------
say "building iclv with $san_flags into $lib"
# a copy of the working tree (uncommitted files too) without .git, build
# outputs or ci-out; tar is an essential package of every Debian install
rm -rf "$src"; mkdir -p "$src"
tar -C "$root" --exclude=.git --exclude='src/*.o' --exclude='src/*.so' --exclude=ci-out -cf - . |
  tar -C "$src" -xf - || fail "could not copy the source tree to $src"
(cd "$src" && { [ -x ./cleanup ] && ./cleanup; true; } &&
   R_MAKEVARS_USER="$makevars" R CMD INSTALL --no-test-load --no-docs --no-multiarch --library="$lib" .) \
   > "$work/install.log" 2>&1 || { tail -40 "$work/install.log"; fail "the instrumented build failed"; }
so="$lib/iclv/libs/iclv.so"
[ -f "$so" ] || fail "no $so after the build"
grep -q -- "-fsanitize=address" "$work/install.log" || fail "the build did not use the sanitizer flags"
ldd "$so" | grep libasan >/dev/null || fail "$so is not linked against libasan"
echo "   built; $(basename "$so") links: $(ldd "$so" | grep -oE 'lib(asan|ubsan)[^ ]*' | tr '\n' ' ')"

# ---- 3. tests ---------------------------------------------------------------------
say "running tests matching '$filter' (OMP_NUM_THREADS=$OMP_NUM_THREADS, ASAN_OPTIONS=$ASAN_OPTIONS)"
files=$(cd "$root/tests/testthat" && ls test-*.R | sed -E 's/^test-(.*)\.R$/\1/' | grep -E "$filter" | tr '\n' ' ')
[ -n "$files" ] || fail "no test file matches '$filter'"
echo "   files: $files"
start=$(date +%s)
san_R -e "
  suppressPackageStartupMessages(library(testthat))
  library(iclv, lib.loc = '$lib')
  res <- testthat::test_dir('$root/tests/testthat', package = 'iclv', load_package = 'none',
                            filter = '$filter', reporter = testthat::SummaryReporter\$new(show_praise = FALSE),
                            stop_on_failure = FALSE)
  df <- as.data.frame(res)
  cat(sprintf('\ntests: %d passed, %d failed, %d errored, %d skipped\n',
              sum(df\$passed), sum(df\$failed), sum(df\$error), sum(df\$skipped)))
  quit(status = if (sum(df\$failed) + sum(df\$error) > 0) 3 else 0)
" > "$work/tests.log" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
grep -E "^tests:" "$work/tests.log" || true
if has_report "$work/tests.log"; then
  grep -nE -A25 "ERROR: AddressSanitizer|runtime error:" "$work/tests.log" | head -80
  fail "sanitizer report in the tests (R exited with $rc)"
fi
if [ $rc -ne 0 ]; then
  tail -60 "$work/tests.log"
  fail "the tests failed or R died (exit status $rc)"
fi
echo "   no sanitizer report; tests took ${secs}s"
say "sanitize.sh: OK"
[ -z "${ICLV_SAN_DIR:-}" ] && rm -rf "$work"
exit 0
