#!/usr/bin/env bash
# Install the built packages for real with dpkg -i, check what they installed against the
# units, then purge them. For CI (root, a disposable machine): .ci/run calls it.
#
#   deploy/debian/verify.sh DIR_WITH_DEBS
set -euo pipefail
DEBS=${1:?usage: verify.sh DIR_WITH_DEBS}
fail() { echo "verify.sh: $*" >&2; exit 1; }

echo "== dpkg -i"
dpkg -i "$DEBS"/diag-agent_*.deb "$DEBS"/diag-collector_*.deb

echo "== what the units expect is there"
for unit in diag-agent diag-collector; do
    path=/usr/lib/systemd/system/$unit.service
    [ -f "$path" ] || fail "$path missing"
    exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$path")
    [ -x "$exec_start" ] || fail "$unit: ExecStart $exec_start is not executable"
done
# systemd-analyze verify: the units as installed (executables, users, directives).
SYSTEMD_LOG_LEVEL=warning systemd-analyze verify \
    /usr/lib/systemd/system/diag-agent.service /usr/lib/systemd/system/diag-collector.service

echo "== commands"
diag-agent --version
diag-collector --version
diagctl --version
diag-agent check-config /etc/diag-agent/agent.yaml
getent passwd diag-agent >/dev/null || fail "the sysusers file did not create user diag-agent"
[ "$(stat -c %G:%a /etc/diag-agent/agent.yaml)" = "diag-agent:640" ] || fail "agent.yaml is not root:diag-agent 0640"
# The collector's default config loads; the first-token path works on a scratch store.
scratch=$(mktemp -d)
diag-collector --log-level warning migrate --config /etc/diag-collector/collector.yaml \
    --store "sqlite:///$scratch/c.db" >/dev/null
token=$(diag-collector --log-level warning token create --name ci --store "sqlite:///$scratch/c.db" 2>/dev/null)
case "$token" in dgt_*) ;; *) fail "token create printed more than the token: $token" ;; esac
rm -rf "$scratch"
# The agent venv carries only the agent's dependencies.
if /usr/lib/diag-agent/bin/python -c "import sqlalchemy" 2>/dev/null; then
    fail "the diag-agent package carries sqlalchemy"
fi
diag-agent checks --check host.memory --format json >/dev/null || [ $? -le 2 ] || fail "diag-agent checks failed"

echo "== dpkg --purge"
dpkg --purge diag-agent diag-collector
[ ! -e /usr/bin/diag-agent ] || fail "/usr/bin/diag-agent left behind"
[ ! -e /usr/lib/diag-agent ] || fail "/usr/lib/diag-agent left behind (bytecode?)"
[ ! -e /usr/lib/diag-collector ] || fail "/usr/lib/diag-collector left behind (bytecode?)"
echo "verify.sh: the packages install, verify and purge cleanly"
