#!/usr/bin/env bash
# Creates the environment at $ENV_PREFIX inside an image build; the same script serves every target.
#
#   install-env.sh venv                     create the venv at $ENV_PREFIX (for uv and pip)
#   install-env.sh uv|pip|conda TARGET      create the environment
#   install-env.sh project TARGET           add the project's locked dependencies to it
#   install-env.sh extras TARGET PKG==V...  add pinned packages to it (the dev flavor)
#   install-env.sh package TARGET           add the project's own wheel (/tmp/ctx/package/), --no-deps
#   install-env.sh uv-tool                  install uv itself into /opt/uv (a stage of its own)
#
# Reads (bind-mounted from the build context, never copied into a layer; /tmp/ctx/envs is the
# layer's own folder of .torchenv/locks/TARGET/, which invoke build stages from envs/):
#   /tmp/ctx/torchbuild/                    the stdlib-only build helpers (env file parser, manifest,
#                                           build-info), run as `python -m torchbuild.<module>`
#   /tmp/ctx/envs/TARGET.yml                the env file (python + pinned pip section)
#   /tmp/ctx/envs/TARGET.pip.lock.txt       hashed lock for the uv and pip installers, when present
#   /tmp/ctx/envs/TARGET.project.lock.txt   hashed lock of the project's dependencies, when present
#   /tmp/ctx/envs/TARGET.dev.lock.txt       hashed lock of the dev flavor's extras, when present
#   /tmp/ctx/envs/TARGET.conda-lock.yml     conda-lock unified lock for the conda installer, when present
#   /tmp/ctx/wheelhouse/*.whl               wheels for offline builds, when present
#   /tmp/ctx/uv-requirements.txt            uv's version and sha256 (uv-tool only)
#   /run/secrets/ca_cert                    a CA bundle for TLS-inspecting proxies (BuildKit secret)
#   /run/secrets/index_url                  the --index-url with its credentials (BuildKit secret)
# Honours TORCHENV_INDEX_URL (a mirror of the target's pip index) and CONDA_CHANNEL_ALIAS; the conda
# installer takes the Python version from PYTHON_VERSION (rendered from the matrix, like the env file).
set -euo pipefail
# Group-writable files: the environment's group (see the Dockerfile) can install into it.
umask 0002

installer=$1
mode=$1  # installer is the environment's installer from here on, read back in the overlay modes
target=${2:-}
ctx=/tmp/ctx
env_file=$ctx/envs/$target.yml
info=/opt/torchenv/build-info.json
# The build helpers run as modules of the mounted torchbuild package.
helper() { PYTHONPATH=$ctx "$prefix/bin/python" -m "torchbuild.$1" "${@:2}"; }
uv_cache=/tmp/uv-cache/${USER_UID:-}

# The build runs this as root; the environment must belong to the image's user (so that the user
# can `pip install` into it), so the caches are handed to that user and the work is done as it.
# (uv-tool runs in a throwaway stage that has no such user; a USER_UID of 0 stays root.)
if [[ $(id -u) == 0 && $installer != uv-tool && ${USER_UID:?USER_UID must be set} != 0 ]]; then
    uid=$USER_UID gid=${USER_GID:?USER_GID must be set}
    for cache in /tmp/pip-cache /tmp/mamba-root; do
        if [[ -d $cache ]]; then chown "$uid:$gid" "$cache"; fi
    done
    # uv's cache gets a folder per UID: uv fails where pip only warns on a cache it cannot write.
    if [[ -d /tmp/uv-cache ]]; then install -d -o "$uid" -g "$gid" "$uv_cache"; fi
    home=$(getent passwd "$uid" | cut -d: -f6)
    exec setpriv --reuid="$uid" --regid="$gid" --clear-groups env HOME="${home:-/tmp}" bash "$0" "$@"
fi

say() { printf 'torchenv: %s\n' "$*"; }
loud() { printf '\n%s\ntorchenv WARNING: %s\n%s\n\n' "$(printf '!%.0s' {1..78})" "$*" "$(printf '!%.0s' {1..78})"; }

make_venv() {
    # A venv from the base image's Python; pip stays as the venv gives it (no drift).
    [[ -x $prefix/bin/python ]] || python3 -m venv "$prefix"
}

case $installer in
    uv-tool) ;; # a stage of its own, no environment
    venv)
        prefix=${ENV_PREFIX:?ENV_PREFIX must be set}
        make_venv
        exit 0
        ;;
    project | extras | package)
        # Their own lock folders (.torchenv/locks/TARGET/project, .../dev) hold no env file.
        prefix=${ENV_PREFIX:?ENV_PREFIX must be set}
        ;;
    *)
        prefix=${ENV_PREFIX:?ENV_PREFIX must be set}
        [[ -f $env_file ]] || { echo "torchenv: $env_file is missing: run invoke generate" >&2; exit 1; }
        ;;
esac

if [[ -f /run/secrets/ca_cert ]]; then
    # The CA reaches pip, uv, micromamba and Python through variables of this RUN only.
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
index_from_env=
if compgen -G "$ctx/wheelhouse/*.whl" > /dev/null; then
    pip_source=(--no-index --find-links "$ctx/wheelhouse")
    say "offline: installing from the wheelhouse only"
elif [[ -n ${TORCHENV_INDEX_URL:-} && $installer != extras && $installer != project && $installer != uv-tool ]]; then
    if [[ -f /run/secrets/index_url ]]; then
        # A URL with credentials goes to pip and uv by environment only, never on a command
        # line (which ps and /proc/*/cmdline show).
        export PIP_INDEX_URL=$TORCHENV_INDEX_URL UV_INDEX_URL=$TORCHENV_INDEX_URL
        index_from_env=1
    else
        pip_source=(--index-url "$TORCHENV_INDEX_URL")
    fi
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
        # A mirror or the wheelhouse replaces the env file's index (uv takes one --index-url only).
        [[ ${#pip_source[@]} == 0 && -z $index_from_env ]] && index_args=("${pins[@]:0:2}")
        pins=("${pins[@]:2}")
    fi
}

lock_install() {
    # "$@": the installer's command line; the lock (or the pins) and the index are added here.
    local lock=$ctx/envs/$target.pip.lock.txt
    if [[ -f $lock ]]; then
        say "installing from $target.pip.lock.txt (exact versions, sha256 checked)"
        lock_mode=hashes
        "$@" --no-deps --require-hashes "${index_args[@]}" "${pip_source[@]}" -r "$lock"
    else
        loud "no lock for $target: installing from pins only, NOT reproducible (run: invoke lock --target $target)"
        lock_mode=pins-only
        "$@" "${index_args[@]}" "${pip_source[@]}" "${pins[@]}"
    fi
}

case $installer in
    uv-tool)
        # uv from PyPI (or the wheelhouse), pinned by version and sha256, in a venv of its own.
        if [[ ${pip_source[0]:-} == --no-index ]] && ! compgen -G "$ctx/wheelhouse/uv-*.whl" > /dev/null; then
            echo "torchenv: offline build with the uv installer, but the wheelhouse has no uv wheel:" \
                "add it (pip download --no-deps -d WHEELHOUSE uv==VERSION, the version of uv-requirements.txt) or use --installer pip" >&2
            exit 1
        fi
        python3 -m venv /opt/uv
        /opt/uv/bin/python -m pip install --no-deps --require-hashes --no-compile \
            "${pip_source[@]}" -r "$ctx/uv-requirements.txt"
        /opt/uv/bin/uv --version
        exit 0
        ;;
    uv)
        # The same venv as the pip installer's (so pip is there for the user), filled by uv:
        # copies from uv's cache mount, each package's sha256 checked, and every installed .py
        # compiled at build time (CHECKED_HASH .pyc files: reproducible under SOURCE_DATE_EPOCH,
        # and an edited source file is still noticed). unsafe-best-match is pip's way of choosing
        # among indexes and find-links (uv's default stops at the first index that has a name),
        # so a lock resolved by pip installs the same files.
        make_venv
        read_pins
        export PYC_INVALIDATION_MODE=CHECKED_HASH
        lock_install uv pip install --python "$prefix/bin/python" \
            --cache-dir "$uv_cache" --link-mode copy --compile-bytecode \
            --index-strategy unsafe-best-match
        ;;
    pip)
        make_venv
        read_pins
        lock_install "$prefix/bin/python" -m pip install
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
    project)
        # The project's dependencies, from their lock (what they add to the pip lock: invoke lock
        # resolves it with the pip lock's versions as constraints), in a layer of their own above
        # the torch family's. A project that declares none has no such lock: nothing to do.
        project_lock=$ctx/envs/$target.project.lock.txt
        if [[ ! -f $project_lock ]]; then
            say "the project declares no dependencies of its own: nothing to add"
            exit 0
        fi
        lock_mode=$(helper buildinfo get "$info" lock)+project-lock
        installer=$(helper buildinfo get "$info" installer)
        if grep -q '^[a-z0-9]' "$project_lock"; then
            say "installing the project's dependencies from $target.project.lock.txt (exact versions, sha256 checked)"
            # git requirements at a commit come as wheels built at lock (their sha256 in the lock);
            # an sdist-only package is built here, its build code run in this step
            links=()
            if compgen -G "$ctx/envs/wheels/*.whl" > /dev/null; then
                links=(--find-links "$ctx/envs/wheels")
            fi
            "$prefix/bin/python" -m pip install --no-deps --require-hashes "${pip_source[@]}" "${links[@]}" -r "$project_lock"
        else
            say "the project's dependencies are all in the pip lock already"
        fi
        ;;
    package)
        # The project's own package, from the one wheel `invoke build` staged, without its
        # dependencies (locked, in the layers below); nothing is downloaded.
        wheels=("$ctx"/package/*.whl)
        [[ ${#wheels[@]} == 1 && -f ${wheels[0]} ]] || { echo "torchenv: no project wheel in .torchenv/package: build with invoke build" >&2; exit 1; }
        name_version=$(basename "${wheels[0]}" | cut -d- -f1,2)
        say "installing the project's package ${name_version/-/ } (--no-deps: its dependencies are below)"
        PIP_NO_CACHE_DIR=1 "$prefix/bin/python" -m pip install --no-deps --no-index "${wheels[0]}"
        lock_mode=$(helper buildinfo get "$info" lock)
        installer=$(helper buildinfo get "$info" installer)
        helper buildinfo write "$info" "package=${name_version/-/==}"
        ;;
    extras)
        # The dev flavor's extras from pip's default index (or the wheelhouse): from their lock,
        # which holds only what they add to the pip lock (invoke lock resolves it with the pip
        # lock's versions as constraints), else from the pins given here, with a warning. The
        # conda environment was not installed from the pip lock, so it takes the pins too.
        shift 2
        dev_lock=$ctx/envs/$target.dev.lock.txt
        lock_mode=$(helper buildinfo get "$info" lock)
        installer=$(helper buildinfo get "$info" installer)
        if [[ -f $dev_lock && $installer != conda ]]; then
            say "installing the dev extras from $target.dev.lock.txt (exact versions, sha256 checked)"
            "$prefix/bin/python" -m pip install --no-deps --require-hashes "${pip_source[@]}" -r "$dev_lock"
            lock_mode+=+dev-lock
        else
            if [[ $installer == conda ]]; then
                loud "conda: the dev extras install from pins only (their lock is the pip lock's), NOT reproducible"
            else
                loud "no dev lock for $target: the dev extras install from pins only, NOT reproducible (run: invoke lock --target $target)"
            fi
            "$prefix/bin/python" -m pip install "${pip_source[@]}" "$@"
            lock_mode+=+extras
        fi
        ;;
    *)
        echo "torchenv: unknown installer '$installer' (uv, pip or conda)" >&2
        exit 2
        ;;
esac

# The smoke package is copied to /opt/torchenv/lib in the last layer; make it importable, and
site=$("$prefix/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# torchbuild/torchenv.pth: the smoke package's folder, and the start-up line that gives any UID a
# user name and a writable HOME (torchsmoke/userenv.py; a no-op until torchsmoke is copied in).
cp "$ctx/torchbuild/torchenv.pth" "$site/torchenv.pth"

# The torch family's pins, which PIP_CONSTRAINT and UV_CONSTRAINT name (torchbuild/constraints.py):
# a later `pip install X` cannot replace the CUDA build. The extras step installs under them.
[[ $mode == extras || $mode == project || $mode == package ]] || helper constraints --out "$prefix/torchenv-constraints.txt"

# What this image holds: every installed file's hash (see torchbuild/manifest.py). A layer above
# the environment's reuses the lower layer's manifest for the files it did not write.
reuse=()
[[ -f /opt/torchenv/manifest.json ]] && reuse=(--reuse /opt/torchenv/manifest.json)
helper manifest "${reuse[@]}" --out /opt/torchenv/manifest.json
helper buildinfo write "$info" "target=$target" "installer=$installer" "lock=$lock_mode"
say "environment ready at $prefix ($installer, $lock_mode)"
