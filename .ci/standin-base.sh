#!/usr/bin/env bash
# Makes the local stand-in for the base image (no registry is reachable on our machines):
# Debian bookworm with python3 and python3-venv, from debootstrap's default mirror.
#   .ci/standin-base.sh [IMAGE]     (default torchenv-standin/python:3.11-slim-bookworm)
set -euo pipefail
image=${1:-torchenv-standin/python:3.11-slim-bookworm}
docker=${DOCKER:-/usr/bin/docker}
if "$docker" image inspect "$image" > /dev/null 2>&1; then
    echo "stand-in base $image already present"
    exit 0
fi
root=$(mktemp -d /tmp/standin-root.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" \
    > "$root.log" 2>&1 || { tail -20 "$root.log"; exit 1; }
rm -f "$root.log"
# Like the slim image it stands in for: no package lists, downloaded packages, docs or translations
# (about 140 MB that the real base does not carry, and that would count as image overhead).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
tar -C "$root" -c . | "$docker" import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$image"
echo "stand-in base $image imported"
