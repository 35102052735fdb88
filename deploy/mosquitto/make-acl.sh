#!/usr/bin/env bash
# Write Mosquitto's ACL for counterfloor: central, the read-only watchers, one gateway per office.
#
#   make-acl.sh OUT OFFICE_ID ...        (OUT "-" writes to stdout)
#
# Every office gets an explicit block for its gateway's account, gw-<office id>, rather than one
# `pattern` rule for all: a pattern can only put the whole user name (%u) or client id (%c) into
# a topic, and it applies to every account, so a pattern scheme would need user names that are
# bare office ids, names reserved for central and the watchers, and it would still grant those
# two accounts writes under counterfloor/central/… and counterfloor/watch/…. Explicit blocks grant
# exactly what each account needs, and an office whose block is gone can do nothing even with a
# password. Adding an office is one step anyway (its password-file line), so this script is run
# with the full list then, and Mosquitto reloaded (docs/operations.md). All ids are checked
# before anything is written; OUT is replaced whole, never left half-written.
set -euo pipefail

[[ $# -ge 2 ]] || { echo "usage: $0 OUT OFFICE_ID ..." >&2; exit 2; }
out=$1
shift
declare -A seen=()
for office in "$@"; do
    # The office id rule of office/config.py and the MQTT topics: it is one topic level.
    [[ $office =~ ^[a-z0-9][a-z0-9-]{0,31}$ ]] || { echo "$0: bad office id '$office' (1-32 of a-z, 0-9, -; not starting with -)" >&2; exit 2; }
    [[ -z ${seen[$office]:-} ]] || { echo "$0: office id '$office' given twice" >&2; exit 2; }
    seen[$office]=1
done

render() {
    echo "# Mosquitto ACL for counterfloor, written by deploy/mosquitto/make-acl.sh for the offices: $*"
    cat <<'EOF'
# Regenerate it with the full list of office ids rather than editing it (docs/operations.md).
# No rule stands before the first `user` line: such rules would apply to anonymous clients, who
# get nothing (allow_anonymous false in mosquitto.conf, and no rule for them here either).

# central: reads every office; publishes only what it owns — commands to gateways, wait
# estimates and per-ticket estimates — never a gateway's own topics.
user central
topic read counterfloor/#
topic write counterfloor/+/cmd
topic write counterfloor/+/estimates/+
topic write counterfloor/+/tickets/+
topic write counterfloor/+/restored/+

# watch: facilities staff's `counterfloor office watch`; reads every office, publishes nothing.
user watch
topic read counterfloor/#
EOF
    local office
    for office in "$@"; do
        cat <<EOF

# The gateway of office $office: publishes its own office's state, reads its own commands,
# central's estimates for its services (its model's while current), and its own birth/death
# topic (a late will of an old session landing over its birth is repaired).
user gw-$office
topic readwrite counterfloor/$office/gateway
topic write counterfloor/$office/events
topic write counterfloor/$office/snapshot
topic write counterfloor/$office/mode
topic write counterfloor/$office/devices/+
topic write counterfloor/$office/ack
topic read counterfloor/$office/cmd
topic read counterfloor/$office/estimates/+
# A replacement Pi asks central for today's copy (counterfloor gateway restore) and reads the answer.
topic write counterfloor/$office/restore
topic read counterfloor/$office/restored/+
EOF
    done
}

if [[ $out == - ]]; then
    render "$@"
else
    tmp=$(mktemp "$(dirname "$out")/.acl.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    render "$@" > "$tmp"
    chmod 0644 "$tmp"   # it holds no secret, and the broker must be able to read it
    mv -f "$tmp" "$out"
fi
