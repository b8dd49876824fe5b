# swarm-medic container image.
#
#   scripts/image.sh                          # the lab and scripts/release.sh: offline, see there
#   docker build --build-arg VERSION=X.Y.Z -t swarm-medic:X.Y.Z .   # python:3.12-slim + PyPI
#
# The dependencies come from the hashed lock (requirements/runtime.txt; requirements/build.txt
# for setuptools, which builds the wheel): pip refuses any file whose sha256 is not in the lock.
#
# Build arguments:
#   BASE_IMAGE  any Debian-like image with python3 (>= 3.11) and its venv module. Both stages use
#               it, so the venv's interpreter symlink points at the same python in the runtime.
#               For a build you can repeat, name it by digest: python:3.12-slim@sha256:...
#   WHEELS      optional: a directory *inside the build context* holding every wheel the locks
#               name for this platform (scripts/image.sh downloads them). When set, pip never
#               touches the network (`--no-index --find-links`), so the build can run with
#               `docker build --network none`. Empty (the default): pip uses PyPI.
#   VERSION     the package's version (pyproject.toml), for the OCI label; when given, the build
#               fails unless the installed swarm-medic says the same (scripts/image.sh and the
#               release workflow pass it, so the label cannot drift from the package).
#   SOURCE_DATE_EPOCH  the last commit's time (scripts/image.sh): pip compiles hash-based .pyc
#               files and setuptools stamps the wheel with it, and BuildKit (0.11 and later) dates
#               the image with it, so the same tree gives the same files.
#   REVISION, CREATED  only fill the OCI labels (CREATED: SOURCE_DATE_EPOCH as a date).

ARG BASE_IMAGE=python:3.12-slim

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build
ARG WHEELS=
ARG VERSION=
ARG SOURCE_DATE_EPOCH
# Spelled out: an image made with `docker import` may carry no PATH at all.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# .dockerignore lets in only pyproject.toml, README.md, LICENSE, requirements/, swarm_medic/,
# runbooks/ (and a wheel directory when one is there), so this layer changes only when they do.
# The wheel is built in a venv of its own (the locked setuptools, no build isolation: nothing
# unlocked is fetched); the runtime venv gets the locked dependencies, then the wheel with
# nothing more, and keeps neither pip nor setuptools (uninstalled last): smaller, and nothing
# in the running image can install anything.
COPY . .
RUN set -eu; \
    if [ -n "$WHEELS" ]; then \
        [ -d "/src/$WHEELS" ] || { echo "WHEELS=$WHEELS is not a directory in the build context" >&2; exit 1; }; \
        export PIP_NO_INDEX=1 PIP_FIND_LINKS="/src/$WHEELS"; \
    fi; \
    python3 -m venv /tmp/build-venv; \
    /tmp/build-venv/bin/pip install --quiet --require-hashes -r requirements/build.txt; \
    /tmp/build-venv/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/dist .; \
    python3 -m venv /opt/swarm-medic; \
    /opt/swarm-medic/bin/pip install --require-hashes -r requirements/runtime.txt; \
    /opt/swarm-medic/bin/pip install --no-deps /tmp/dist/swarm_medic-*.whl; \
    /opt/swarm-medic/bin/pip check; \
    /opt/swarm-medic/bin/pip uninstall --yes --quiet setuptools pip; \
    installed=$(/opt/swarm-medic/bin/swarm-medic --version); echo "$installed"; \
    if [ -n "$VERSION" ] && [ "$installed" != "swarm-medic $VERSION" ]; then \
        echo "VERSION=$VERSION but the package says: $installed" >&2; exit 1; \
    fi

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
# No default version here: pyproject.toml is the one place it is said (see VERSION above).
ARG VERSION=
ARG REVISION=
ARG CREATED=
LABEL org.opencontainers.image.title="swarm-medic" \
      org.opencontainers.image.description="A self-healing troubleshooting daemon for Docker Swarm: finds stuck tasks and paused updates, heals them under a safety policy." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

COPY --from=build /opt/swarm-medic /opt/swarm-medic
ENV PATH=/opt/swarm-medic/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Runs as root, on purpose. swarm-medic's only job is the Engine API, through the bind-mounted
# /var/run/docker.sock (root:docker, mode 660 on the host). A non-root user would need the
# host's docker GID, which differs from host to host (105 on the lab machine, 999 or 998
# elsewhere), so a GID baked in at build time breaks a global service on mixed nodes. And it
# would buy nothing: whoever can talk to that socket can start a privileged container that
# mounts the host's /, i.e. is root on the node anyway. The real boundary is that the image runs
# no shell and nothing but swarm-medic, and that the stack file mounts nothing else.
# Prefer non-root anyway? The image needs no build change: run it as `nobody` with the node's
# docker group as primary group, e.g. `user: "65534:105"` in the stack file (see deploy/).
USER 0:0

EXPOSE 9324
# /healthz answers 200 when the last scan is fresh and the event stream is connected, 503
# otherwise. python, not curl: the slim base has no curl. The port follows the setting.
# Every 15 s: a swarm task only counts as running once healthy, so this is also its start delay,
# and 3 misses (45 s) must fit in the stack's update monitor window (60 s) to trigger a rollback.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SWARM_MEDIC_HTTP_PORT', '9324'), timeout=4)"]

ENTRYPOINT ["swarm-medic"]
CMD ["run"]
