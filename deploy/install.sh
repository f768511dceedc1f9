#!/usr/bin/env bash
# Install tidegate on a Debian-family box (Raspberry Pi OS bookworm, arm64):
#
#   sudo deploy/install.sh --wheel tidegate-*.whl [--wheelhouse DIR] [--sd-card] [--bench]
#   deploy/install.sh --root /tmp/tree --wheel ...      (into a directory tree)
#
#   /opt/tidegate/venv            virtual environment with tidegate and its deps
#   /usr/local/bin/tidegate       -> the venv's command, for technicians
#   /etc/tidegate/*.toml          config (kept if present), root:tidegate-ops 0640
#   /etc/sysusers.d/tidegate.conf static user `tidegate`, group `tidegate-ops`
#   /etc/systemd/system/tidegate-{agent,receiver}.service  (not enabled)
#   /var/lib/tidegate/            state (the units' StateDirectory below it)
#   --sd-card: /etc/systemd/journald.conf.d/tidegate-volatile.conf (journal in RAM)
#   --bench: also matplotlib, for the plot in `tidegate bench` reports
#
# --wheelhouse DIR installs with `pip --no-index` from DIR (a box without
# internet; fill DIR with deploy/wheelhouse.sh). Without it pip fetches the
# dependencies from PyPI. Running it again upgrades in place; config is never
# overwritten. --root writes into a tree instead of / (tests, image builds):
# users go into the tree's /etc/passwd via systemd-sysusers --root, and nothing
# on the running system is touched (no systemctl).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT=/
WHEEL=""
WHEELHOUSE=""
SD_CARD=0
EXTRAS=""
PYTHON="${PYTHON:-python3}"

die() { echo "install.sh: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
        --wheel) WHEEL="${2:?--wheel needs a file}"; shift 2 ;;
        --wheelhouse) WHEELHOUSE="${2:?--wheelhouse needs a directory}"; shift 2 ;;
        --sd-card) SD_CARD=1; shift ;;
        --bench) EXTRAS="[bench]"; shift ;;
        --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ -n "$WHEEL" ]] || die "--wheel FILE is required (build it with deploy/build-arm64-wheel.sh or maturin build)"
[[ -f "$WHEEL" ]] || die "--wheel: no file $WHEEL"
[[ -z "$WHEELHOUSE" || -d "$WHEELHOUSE" ]] || die "--wheelhouse: no directory $WHEELHOUSE"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PYTHON: Python 3.11 or newer is required"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
    || die "$PYTHON cannot create a venv: sudo apt install python3-venv"
if [[ "$ROOT" == / && $EUID -ne 0 ]]; then die "installing into / needs root (or use --root DIR)"; fi
ROOT="$(realpath -m "$ROOT")"
R="${ROOT%/}"  # "" for /
WHEEL="$(realpath "$WHEEL")"

# -- users -------------------------------------------------------------------
install -d -m 0755 "$R/etc/sysusers.d"
install -m 0644 "$HERE/systemd/tidegate.sysusers" "$R/etc/sysusers.d/tidegate.conf"
if command -v systemd-sysusers >/dev/null; then
    if [[ -n "$R" ]]; then systemd-sysusers --root="$ROOT" "$R/etc/sysusers.d/tidegate.conf"
    else systemd-sysusers /etc/sysusers.d/tidegate.conf; fi
elif [[ -z "$R" ]]; then
    getent group tidegate-ops >/dev/null || groupadd --system tidegate-ops
    getent passwd tidegate >/dev/null || useradd --system --user-group --home-dir /var/lib/tidegate \
        --no-create-home --shell /usr/sbin/nologin --comment "tidegate agent and receiver" tidegate
    usermod -a -G tidegate-ops tidegate
else
    die "--root needs systemd-sysusers to create the users in the tree"
fi
# Numeric ids from the tree's own files, so --root never uses the host's users.
gid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$R/etc/group"; }
OPS_GID="$(gid_of tidegate-ops)"
[[ -n "$OPS_GID" ]] || die "group tidegate-ops was not created in $ROOT/etc/group"
own() { if [[ $EUID -eq 0 ]]; then chown "$@"; fi; }

# -- the virtual environment ---------------------------------------------------
VENV="$R/opt/tidegate/venv"
install -d -m 0755 "$R/opt/tidegate" "$R/opt/tidegate/share/doc"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade)
if [[ -n "$WHEELHOUSE" ]]; then PIP+=(--no-index --find-links "$(realpath "$WHEELHOUSE")"); fi
"${PIP[@]}" "$WHEEL$EXTRAS"
"$VENV/bin/tidegate" --help >/dev/null
install -m 0644 "$HERE/../docs/deploy.md" "$R/opt/tidegate/share/doc/deploy.md" 2>/dev/null || true
install -d -m 0755 "$R/usr/local/bin"
ln -sfn /opt/tidegate/venv/bin/tidegate "$R/usr/local/bin/tidegate"

# -- config, state, units ------------------------------------------------------
install -d -m 0750 "$R/etc/tidegate"
own "0:$OPS_GID" "$R/etc/tidegate"
for f in agent.toml receiver.toml; do
    if [[ -e "$R/etc/tidegate/$f" ]]; then
        echo "install.sh: keeping $ROOT/etc/tidegate/$f" >&2
    else
        install -m 0640 "$HERE/etc/$f" "$R/etc/tidegate/$f"
        own "0:$OPS_GID" "$R/etc/tidegate/$f"
    fi
done
install -d -m 0755 "$R/var/lib/tidegate"
install -d -m 0755 "$R/etc/systemd/system"
for u in tidegate-agent.service tidegate-receiver.service; do
    install -m 0644 "$HERE/systemd/$u" "$R/etc/systemd/system/$u"
done
if [[ $SD_CARD -eq 1 ]]; then
    install -d -m 0755 "$R/etc/systemd/journald.conf.d"
    install -m 0644 "$HERE/systemd/journald-volatile.conf" "$R/etc/systemd/journald.conf.d/tidegate-volatile.conf"
fi

if [[ -z "$R" ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    systemctl daemon-reload
    [[ $SD_CARD -eq 1 ]] && systemctl restart systemd-journald
fi
version="$("$VENV/bin/tidegate" --version 2>/dev/null || "$VENV/bin/python" -c 'import edge; print(edge.__version__)')"
cat >&2 <<MSG
install.sh: tidegate $version installed under $ROOT
  next: edit /etc/tidegate/agent.toml (OT box) or receiver.toml (IT box), then
        sudo tidegate check /etc/tidegate/agent.toml   (root:tidegate-ops 0640)
        systemctl enable --now tidegate-agent      # or tidegate-receiver
  technicians: usermod -a -G tidegate-ops NAME, then \`tidegate tui\` over SSH
MSG
