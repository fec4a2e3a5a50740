#!/usr/bin/env bash
# Build the diag-agent and diag-collector Debian packages from this checkout.
#
#   deploy/debian/build.sh [OUTPUT_DIR]        (default: dist/)
#
# Each package carries its own Python environment (a venv on Debian's /usr/bin/python3,
# so it depends on that python3 minor version) under /usr/lib/<package>, and installs
# to the paths the units use: /usr/bin/diag-agent, /usr/bin/diag-collector (and diagctl),
# /usr/lib/systemd/system/<package>.service, the agent's sysusers.d file, a default config
# in /etc/<package>/ (a conffile) and docs in /usr/share/doc/<package>/.
#
# Why a private venv and not Debian's python3-* packages: Debian has no grpcio >= 1.85,
# WeasyPrint >= 70 or pydantic 2.6-2.13 in stable, and the agent's memory budget was
# measured with these exact versions. The agent's venv holds only the agent's
# dependencies (pip install remote-diag, no extras).
#
# Needs: dpkg-deb, Debian's python3 with venv, and pip access to the dependencies.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)
PYTHON=${DIAG_DEB_PYTHON:-/usr/bin/python3}
HERE="$ROOT/deploy/debian"

VERSION=$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$ROOT/pyproject.toml")
ARCH=$(dpkg --print-architecture)
PY_MINOR=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
PY_NEXT=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1] + 1}")')
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== wheel remote-diag $VERSION"
"$PYTHON" -m venv "$WORK/build-venv"
# From a copy: building in the checkout would leave build/ and *.egg-info behind.
tar -C "$ROOT" --exclude=.venv --exclude=build --exclude=dist --exclude=.git --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=.mypy_cache --exclude=.ruff_cache -cf - . | (mkdir "$WORK/src" && tar -C "$WORK/src" -xf -)
"$WORK/build-venv/bin/pip" wheel -q --no-deps -w "$WORK/wheels" "$WORK/src" 2>&1 | { grep -v "^WARNING: Location" || true; }
WHEEL=$(ls "$WORK"/wheels/remote_diag-*.whl)

# venv PACKAGE REQUIREMENT: a relocatable copy of a venv for /usr/lib/PACKAGE in the staging tree.
venv() {
    local package=$1 requirement=$2
    local stage="$WORK/$package" target="/usr/lib/$package"
    local venv_dir="$stage$target"
    "$PYTHON" -m venv "$venv_dir"
    "$venv_dir/bin/pip" install -q --no-compile "$requirement" 2>&1 | { grep -v "^WARNING: Location" || true; }
    "$venv_dir/bin/pip" uninstall -q -y pip >/dev/null
    # The venv was made in the staging tree: point its scripts and config at the installed path.
    grep -rlI --null "$venv_dir" "$venv_dir/bin" "$venv_dir/pyvenv.cfg" | xargs -0 -r sed -i "s#$venv_dir#$target#g"
    rm -f "$venv_dir"/bin/activate* "$venv_dir"/bin/Activate.ps1
    find "$venv_dir" -name __pycache__ -type d -prune -exec rm -rf {} +
}

# common PACKAGE: files every package has (docs, licence, unit, control files).
common() {
    local package=$1 stage="$WORK/$1"
    install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/lib/systemd/system" "$stage/usr/share/doc/$package"
    install -m 0644 "$ROOT/deploy/$package.service" "$stage/usr/lib/systemd/system/"
    install -m 0644 "$ROOT/README.md" "$stage/usr/share/doc/$package/"
    install -m 0644 "$ROOT/LICENSE" "$stage/usr/share/doc/$package/copyright"
    for script in postinst prerm postrm; do
        if [ -f "$HERE/$package.$script" ]; then
            install -m 0755 "$HERE/$package.$script" "$stage/DEBIAN/$script"
        fi
    done
}

# control PACKAGE DEPENDS RECOMMENDS DESCRIPTION
control() {
    local package=$1 depends=$2 recommends=$3 description=$4 stage="$WORK/$1"
    local size
    # Everything under /etc is the admin's: dpkg keeps their edits across upgrades.
    (cd "$stage" && find etc -type f | sed 's#^#/#' >DEBIAN/conffiles)
    size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
    {
        echo "Package: $package"
        echo "Version: $VERSION"
        echo "Architecture: $ARCH"
        echo "Maintainer: remote-diag maintainers <remote-diag@localhost>"
        echo "Installed-Size: $size"
        echo "Depends: $depends"
        [ -n "$recommends" ] && echo "Recommends: $recommends"
        echo "Section: admin"
        echo "Priority: optional"
        echo "Homepage: https://example.invalid/remote-diag"
        echo "Description: $description"
    } >"$stage/DEBIAN/control"
    dpkg-deb --root-owner-group -Zzstd --build "$stage" "$OUT/${package}_${VERSION}_${ARCH}.deb" >/dev/null
    echo "built $OUT/${package}_${VERSION}_${ARCH}.deb (${size} KiB installed)"
}

PYDEP="python3 (>= $PY_MINOR), python3 (<< $PY_NEXT)"

echo "== diag-agent"
venv diag-agent "$WHEEL"
common diag-agent
install -d "$WORK/diag-agent/etc/diag-agent" "$WORK/diag-agent/usr/lib/sysusers.d"
install -m 0640 "$ROOT/deploy/agent.example.yaml" "$WORK/diag-agent/etc/diag-agent/agent.yaml"
install -m 0644 "$ROOT/deploy/diag-agent.sysusers.conf" "$WORK/diag-agent/usr/lib/sysusers.d/diag-agent.conf"
ln -s /usr/lib/diag-agent/bin/diag-agent "$WORK/diag-agent/usr/bin/diag-agent"
install -m 0644 "$ROOT/docs/agent.md" "$ROOT/docs/checks.md" "$WORK/diag-agent/usr/share/doc/diag-agent/"
control diag-agent "$PYDEP, systemd" "" "remote-diag agent: inspection checks with a store-and-forward spool
 Runs inspection checks on a customer host, spools every result on disk and streams
 them to the vendor's diag-collector over one outbound gRPC stream. No inbound port."

echo "== diag-collector"
venv diag-collector "$WHEEL[collector]"
common diag-collector
install -d "$WORK/diag-collector/etc/diag-collector"
# 0644: the unit's DynamicUser= cannot be given a group; secrets go in systemd credentials
# (LoadCredential=, readable by the service only), referenced by the *_file settings.
install -m 0644 "$ROOT/deploy/collector.example.yaml" "$WORK/diag-collector/etc/diag-collector/collector.yaml"
ln -s /usr/lib/diag-collector/bin/diag-collector "$WORK/diag-collector/usr/bin/diag-collector"
ln -s /usr/lib/diag-collector/bin/diagctl "$WORK/diag-collector/usr/bin/diagctl"
install -m 0644 "$ROOT/docs/collector.md" "$WORK/diag-collector/usr/share/doc/diag-collector/"
cp -r "$ROOT/deploy/plans" "$WORK/diag-collector/usr/share/doc/diag-collector/example-plans"
control diag-collector "$PYDEP, systemd, libpango-1.0-0, libpangoft2-1.0-0" \
    "fonts-noto-cjk, libharfbuzz-subset0" \
    "remote-diag collector: ingest, store, detection, inspections, reports, HTTP API
 The vendor-side server of remote-diag: gRPC ingest from agents, SQLite or PostgreSQL
 store, degradation detection and emergency cases, scheduled inspections, reports in
 English and Simplified Chinese, an HTTP JSON API and Prometheus metrics. Includes diagctl."
