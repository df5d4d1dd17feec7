#!/bin/bash
# The long study, every suite of the registry in its order, one suite per process (each resumes where it stopped); commit
# records as they land. Usage: bench/study_queue.sh [after-pid] [preset]   (waits for that process first; preset: study)
cd "$(dirname "$0")/.."
[ -n "$1" ] && while kill -0 "$1" 2>/dev/null; do sleep 20; done
preset=${2:-study}
run() { echo "== $(date -u +%FT%TZ) $*"; python experiments.py "$@" || echo "== failed: $*"; }
for s in $(python -c "import ftl.studies as st; print(' '.join(n for n in st.SUITES if n != 'smoke'))"); do run --suite $s --preset $preset; done
echo "== $(date -u +%FT%TZ) done"
