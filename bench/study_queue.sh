#!/bin/bash
# The long study, in order, one suite per process (each resumes where it stopped); commit records as they land.
# Usage: bench/study_queue.sh [after-pid]   (waits for that process first)
cd "$(dirname "$0")/.."
[ -n "$1" ] && while kill -0 "$1" 2>/dev/null; do sleep 20; done
run() { echo "== $(date -u +%FT%TZ) $*"; python experiments.py "$@" || echo "== failed: $*"; }
for s in architectures domain-gap strategies imbalance data-efficiency headline analysis; do run --suite $s --preset study; done
echo "== $(date -u +%FT%TZ) done"
