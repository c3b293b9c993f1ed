#!/usr/bin/env bash
# serve-fresh.sh PRISTINE RUN CMD...: replace RUN with a copy of the data
# directory PRISTINE, then exec CMD (which serves from RUN). The exec keeps
# the PID the harness started, so it stops and measures the server itself.
set -euo pipefail
pristine=$1 run=$2
shift 2
rm -rf "$run"
cp -a "$pristine" "$run"
exec "$@"
