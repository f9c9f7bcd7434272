#!/bin/sh
# Builds the release binary: the one build line that deploy/Dockerfile and
# .ci/run both use, so that CI checks exactly what the image ships.
#
#   deploy/build.sh OUTPUT    (run from anywhere; builds the module at the repository root)
#
# CGO_ENABLED=0: a static binary (SQLite is modernc.org/sqlite, pure Go) that
# runs on distroless/static or scratch, which have no C library.
# -trimpath: no build machine paths in the binary. -buildvcs=auto: stamp the git
# revision when built inside a checkout (`tollgate version` prints it), even if
# GOFLAGS says otherwise. -s -w: no symbol table or DWARF, a smaller image;
# `go version -m` still reads the build information.
set -eu
out=${1:?usage: deploy/build.sh OUTPUT}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
cd "$(dirname "$0")/.."
export CGO_ENABLED=0
exec go build -trimpath -buildvcs=auto -ldflags='-s -w' -o "$out" .
