#!/usr/bin/env bash
# Build the standalone CPU image (container/Containerfile) with podman, from a base made of Debian's own
# packages (debootstrap -> podman import), for machines that reach no image registry; then, with --check, run
# it read-only: `sciseg -demo` inside and outside the container (same run), and a segmentation of a volume
# from a mounted data folder, models in a mounted folder.
#
# usage: scripts/build_container.sh [--check DATA_VOLUME] [--outside SCISEG]
#   --check VOL     after the build, run the checks on VOL (a T2w NIfTI file)
#   --outside EXE   the host's sciseg to time `-demo` against (default: sciseg on PATH)
# environment:
#   IMAGE (localhost/sciseg:cpu)  BASE (localhost/bookworm-base:latest: made here when missing)
#   SUITE (bookworm)  MIRROR (the Debian mirror apt uses)  WORK (/var/tmp/sciseg-container: rootfs, logs, runs)
#   PIP_FIND_LINKS (/opt/wheels when it exists: a local folder holding the CPU torch wheel)
# Needs root, podman, runc and debootstrap (apt-get install podman runc debootstrap). podman runs with runc and
# explicit ulimits (crun and the default ulimits fail on hosts without cgroup v2 / CAP_SYS_RESOURCE).
set -euo pipefail
PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${IMAGE:-localhost/sciseg:cpu}"
BASE="${BASE:-localhost/bookworm-base:latest}"
SUITE="${SUITE:-bookworm}"
WORK="${WORK:-/var/tmp/sciseg-container}"
CHECK_VOL="" OUTSIDE="$(command -v sciseg || true)"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --check) CHECK_VOL="$(realpath "$2")"; shift 2 ;;
        --outside) OUTSIDE="$2"; shift 2 ;;
        *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
for tool in podman runc debootstrap; do
    command -v "$tool" > /dev/null || { echo "error: $tool not found (apt-get install podman runc debootstrap)" >&2; exit 1; }
done
mkdir -p "$WORK"
export CONTAINERS_CONF="$WORK/containers.conf"
cat > "$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$(now) - $1:.1f}')"; }

if ! podman image exists "$BASE"; then
    [[ "$BASE" == localhost/* ]] || { echo "error: base image $BASE not found" >&2; exit 1; }
    MIRROR="${MIRROR:-$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | head -1 | grep -oE 'https?://[^ ]+' || true)}"
    echo "== base $BASE: debootstrap $SUITE from ${MIRROR:-the default mirror}"
    t0=$(now)
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$SUITE" "$WORK/rootfs" \
        ${MIRROR:+"$MIRROR"} > "$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    tar -C "$WORK/rootfs" -c . | podman import - "$BASE" > /dev/null
    rm -rf "$WORK/rootfs"
    echo "   base made in $(elapsed "$t0") s"
fi

BUILD_ARGS=(--build-arg "BASE=$BASE")
VOLUMES=()
FIND_LINKS="${PIP_FIND_LINKS:-$([[ -d /opt/wheels ]] && echo /opt/wheels || true)}"
if [[ -n "$FIND_LINKS" ]]; then   # a local CPU torch wheel: mounted for the build only, no extra index needed
    VOLUMES+=(--volume "$FIND_LINKS:/wheels:ro")
    BUILD_ARGS+=(--build-arg PIP_FIND_LINKS=/wheels --build-arg PIP_EXTRA_INDEX_URL=)
fi
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then   # the host's CA bundle (a proxy's CA), build only
    VOLUMES+=(--volume /etc/ssl/certs/ca-certificates.crt:/tmp/host-ca.crt:ro)
    BUILD_ARGS+=(--build-arg PIP_CERT=/tmp/host-ca.crt)
fi
echo "== build $IMAGE from $BASE"
t0=$(now)
podman build "${BUILD_ARGS[@]}" "${VOLUMES[@]}" -t "$IMAGE" -f "$PROJECT/container/Containerfile" "$PROJECT" \
    > "$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
BUILD_S="$(elapsed "$t0")"
SIZE="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
echo "   built in $BUILD_S s; image size $(python3 -c "print(f'{$SIZE/1e9:.2f} GB')") ($SIZE bytes)"

[[ -n "$CHECK_VOL" ]] || exit 0
RUN="$WORK/run"
rm -rf "$RUN" && mkdir -p "$RUN/models" "$RUN/out" "$RUN/models-host" "$RUN/out-host"
THREADS="${OMP_NUM_THREADS:-2}"
RUN_OPTS=(--rm --read-only --network=none -e OMP_NUM_THREADS="$THREADS" -v "$RUN/models:/models" -v "$RUN/out:/out")
echo "== checks (container --read-only --network=none; writable: /out, /models; $THREADS threads)"
podman run "${RUN_OPTS[@]}" --entrypoint /bin/sh "$IMAGE" -c '! touch /opt/sciseg/x 2>/dev/null && ! touch /x 2>/dev/null' \
    || { echo "error: the container's file system is writable" >&2; exit 1; }
echo "   image file system read-only: yes"
inside() { podman run "${RUN_OPTS[@]}" "$IMAGE" "$@"; }
outside() { OMP_NUM_THREADS="$THREADS" SCISEG_MODELS_DIR="$RUN/models-host" "$OUTSIDE" "$@"; }
# sciseg -demo, alternating inside and outside (same run, same load), REPEAT times each
for i in $(seq "${REPEAT:-2}"); do
    for where in inside outside; do
        [[ $where == outside && -z "$OUTSIDE" ]] && continue
        dir=/out/demo$i; [[ $where == outside ]] && dir="$RUN/out-host/demo$i"
        t0=$(now)
        $where -demo -o "$dir" > "$RUN/demo-$where-$i.log" 2>&1 || { cat "$RUN/demo-$where-$i.log"; exit 1; }
        printf '   sciseg -demo %-7s run %d: %5s s  %s\n' "$where" "$i" "$(elapsed "$t0")" \
            "$(grep -i dice "$RUN/demo-$where-$i.log")"
    done
done
# a segmentation of a volume from a read-only data mount, with the demo model installed above
tag=seg_sc_lesion_t2w_sci@phantom-r20261124
t0=$(now)
podman run "${RUN_OPTS[@]}" -v "$(dirname "$CHECK_VOL"):/data:ro" "$IMAGE" -i "/data/$(basename "$CHECK_VOL")" \
    -o /out/seg.nii.gz -task "$tag" > "$RUN/seg.log" 2>&1 || { cat "$RUN/seg.log"; exit 1; }
echo "   segmentation inside: $(elapsed "$t0") s: $(tail -n 1 "$RUN/seg.log")"
if [[ -n "$OUTSIDE" ]]; then
    outside -i "$CHECK_VOL" -o "$RUN/out-host/seg.nii.gz" -task "$tag" > "$RUN/seg-host.log" 2>&1 \
        || { cat "$RUN/seg-host.log"; exit 1; }
    "$(dirname "$OUTSIDE")/python" - "$RUN/out" "$RUN/out-host" <<'PY'
import sys
import nibabel as nib
import numpy as np
for kind in ("sc", "lesion"):
    a, b = (np.asanyarray(nib.load(f"{d}/seg_{kind}_seg.nii.gz").dataobj) for d in sys.argv[1:3])
    print(f"   {kind}: {int(a.sum())} voxels inside, {int(b.sum())} outside, {int((a != b).sum())} differ")
PY
fi
echo "   models folder (mounted): $(cd "$RUN/models" && find . -name sciseg_install.json | sed 's|/sciseg_install.json||')"
