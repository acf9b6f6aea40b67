#!/usr/bin/env bash
# Creates the environment at $ENV_PREFIX inside an image build; the same script serves every target.
#
#   install-env.sh conda|pip TARGET         create the environment
#   install-env.sh extras TARGET PKG==V...  add pinned packages to it (the dev flavor)
#
# Reads (bind-mounted from the build context, never copied into a layer):
#   /tmp/ctx/torchbuild/                    the stdlib-only build helpers (env file parser, manifest,
#                                           build-info), run as `python -m torchbuild.<module>`
#   /tmp/ctx/envs/TARGET.yml                the env file (python + pinned pip section)
#   /tmp/ctx/envs/TARGET.pip.lock.txt       hashed lock for the pip installer, when present
#   /tmp/ctx/envs/TARGET.conda-lock.yml     conda-lock unified lock for the conda installer, when present
#   /tmp/ctx/wheelhouse/*.whl               wheels for offline builds, when present
#   /run/secrets/ca_cert                    a CA bundle for TLS-inspecting proxies (BuildKit secret)
#   /run/secrets/index_url                  the --index-url with its credentials (BuildKit secret)
# Honours TORCHENV_INDEX_URL (a mirror of the target's pip index) and CONDA_CHANNEL_ALIAS; the conda
# installer takes the Python version from PYTHON_VERSION (rendered from the matrix, like the env file).
set -euo pipefail
# Group-writable files: the environment's group (see the Dockerfile) can install into it.
umask 0002

installer=$1
target=$2
ctx=/tmp/ctx
env_file=$ctx/envs/$target.yml
prefix=${ENV_PREFIX:?ENV_PREFIX must be set}
info=/opt/torchenv/build-info.json
# The build helpers run as modules of the mounted torchbuild package.
helper() { PYTHONPATH=$ctx "$prefix/bin/python" -m "torchbuild.$1" "${@:2}"; }

# The build runs this as root; the environment must belong to the image's user (so that the user
# can `pip install` into it), so the caches are handed to that user and the work is done as it.
if [[ $(id -u) == 0 ]]; then
    uid=${USER_UID:?USER_UID must be set} gid=${USER_GID:?USER_GID must be set}
    for cache in /tmp/pip-cache /tmp/mamba-root; do
        if [[ -d $cache ]]; then chown "$uid:$gid" "$cache"; fi
    done
    home=$(getent passwd "$uid" | cut -d: -f6)
    exec setpriv --reuid="$uid" --regid="$gid" --clear-groups env HOME="${home:-/tmp}" bash "$0" "$@"
fi

say() { printf 'torchenv: %s\n' "$*"; }
loud() { printf '\n%s\ntorchenv WARNING: %s\n%s\n\n' "$(printf '!%.0s' {1..78})" "$*" "$(printf '!%.0s' {1..78})"; }

[[ -f $env_file ]] || { echo "torchenv: $env_file is missing: run invoke generate" >&2; exit 1; }

if [[ -f /run/secrets/ca_cert ]]; then
    # The CA reaches pip, micromamba and Python through variables of this RUN only.
    export PIP_CERT=/run/secrets/ca_cert SSL_CERT_FILE=/run/secrets/ca_cert
    export REQUESTS_CA_BUNDLE=/run/secrets/ca_cert MAMBA_SSL_VERIFY=/run/secrets/ca_cert
    say "using the CA bundle given with --ca-cert"
fi

if [[ -f /run/secrets/index_url ]]; then
    # The build argument holds the mirror's URL without its credentials; the secret, the whole URL.
    TORCHENV_INDEX_URL=$(< /run/secrets/index_url)
    say "index credentials from a BuildKit secret (never stored in the image)"
fi

pip_source=()
if compgen -G "$ctx/wheelhouse/*.whl" > /dev/null; then
    pip_source=(--no-index --find-links "$ctx/wheelhouse")
    say "offline: installing from the wheelhouse only"
elif [[ -n ${TORCHENV_INDEX_URL:-} && $installer != extras ]]; then
    pip_source=(--index-url "$TORCHENV_INDEX_URL")
    say "pip index overridden by --index-url"
fi

index_args=()
pins=()
read_pins() {
    # The pins from the env file, through the same parser the host uses (envfile.py, stdlib only).
    local args
    args=$(helper envfile pip-args "$env_file")
    mapfile -t pins <<< "$args"
    if [[ ${pins[0]:-} == --index-url ]]; then
        index_args=("${pins[@]:0:2}")
        pins=("${pins[@]:2}")
    fi
}

pip_install() {
    # The env file's index comes first; a mirror or the wheelhouse given later wins.
    local lock=$ctx/envs/$target.pip.lock.txt
    if [[ -f $lock ]]; then
        say "installing from $target.pip.lock.txt (exact versions, sha256 checked)"
        lock_mode=hashes
        "$prefix/bin/python" -m pip install --no-deps --require-hashes \
            "${index_args[@]}" "${pip_source[@]}" -r "$lock"
    else
        loud "no lock for $target: installing from pins only, NOT reproducible (run: invoke lock --target $target)"
        lock_mode=pins-only
        "$prefix/bin/python" -m pip install "${index_args[@]}" "${pip_source[@]}" "${pins[@]}"
    fi
}

case $installer in
    pip)
        # A venv from the base image's Python; pip stays as the venv gives it (no drift).
        python3 -m venv "$prefix"
        read_pins
        pip_install
        ;;
    conda)
        mm=(micromamba --yes --root-prefix /tmp/mamba-root)
        [[ -n ${CONDA_CHANNEL_ALIAS:-} ]] && mm+=(--channel-alias "$CONDA_CHANNEL_ALIAS")
        lock=$ctx/envs/$target.conda-lock.yml
        if [[ -f $lock ]]; then
            say "installing from $target.conda-lock.yml (exact versions, sha256 checked)"
            lock_mode=hashes
            "${mm[@]}" create --prefix "$prefix" --file "$lock"
        else
            loud "no lock for $target: installing from pins only, NOT reproducible (run: invoke lock --target $target)"
            lock_mode=pins-only
            # The conda part is python and pip; the pins then go through pip, as for the pip installer.
            "${mm[@]}" create --prefix "$prefix" --channel conda-forge \
                "python=${PYTHON_VERSION:?PYTHON_VERSION must be set}" pip
            read_pins
            "$prefix/bin/python" -m pip install "${index_args[@]}" "${pip_source[@]}" "${pins[@]}"
        fi
        ;;
    extras)
        # Pinned extras from pip's default index (or the wheelhouse); not covered by the lock.
        shift 2
        "$prefix/bin/python" -m pip install "${pip_source[@]}" "$@"
        lock_mode=$(helper buildinfo get "$info" lock)+extras
        installer=$(helper buildinfo get "$info" installer)
        ;;
    *)
        echo "torchenv: unknown installer '$installer' (conda or pip)" >&2
        exit 2
        ;;
esac

# The smoke package is copied to /opt/torchenv/lib in the last layer; make it importable.
site=$("$prefix/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo /opt/torchenv/lib > "$site/torchenv.pth"

# What this image holds: every installed file's hash (see torchbuild/manifest.py).
helper manifest --out /opt/torchenv/manifest.json
helper buildinfo write "$info" "target=$target" "installer=$installer" "lock=$lock_mode"
say "environment ready at $prefix ($installer, $lock_mode)"
