# Sourced by tools/run-tests.sh and tools/sanitize.sh:
#   require_programs <script name> <program>...
# fails at once, naming every missing program and the Debian packages that
# provide it (the README's test command installs them all), instead of
# failing later with "command not found" in the middle of a run.
require_programs() {
  who=$1; shift
  missing=""
  for p in "$@"; do
    command -v "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    printf '%s: missing program(s):%s\n' "$who" "$missing" >&2
    printf '%s: install them first, e.g. (Debian 12): apt-get install -y r-base-dev pandoc qpdf  (R, Rscript, gcc, make come with r-base-dev; tar, gzip, grep, sed, coreutils are essential packages)\n' "$who" >&2
    exit 1
  fi
}
