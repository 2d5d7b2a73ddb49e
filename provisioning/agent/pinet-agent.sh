#!/bin/sh
# pinet installer agent. Runs under busybox sh in pinet's installer (or anywhere with busybox,
# wget, sha256sum and zstd). It finds its boot URL (kernel command line pinet.url=, the
# PINET_URL environment variable, or DHCP option 224 asked for with udhcpc), fetches its plan,
# streams the image onto the target disk while checking its sha256, reports, and says done.
#
#   PINET_URL      the boot URL (https://pinet/boot/<token>/?v=1); found as above when unset
#   PINET_IFACE    interface for DHCP (default eth0)
#   PINET_TARGET   write here instead of the plan's first existing target (tests: a file)
#   PINET_NO_REBOOT=1  stay up after done
#
# Called by udhcpc as its event script ("$0 bound"), it records the address and option 224.

STATE=${PINET_STATE:-/tmp/pinet-agent}

if [ "${1:-}" = "deconfig" ] || [ "${1:-}" = "bound" ] || [ "${1:-}" = "renew" ]; then
    # udhcpc event script mode.
    if [ "$1" = "deconfig" ]; then
        ip addr flush dev "$interface" 2>/dev/null
        ip link set "$interface" up
    else
        ip addr flush dev "$interface" 2>/dev/null
        ip addr add "$ip/${mask:-24}" dev "$interface"
        [ -n "${router:-}" ] && ip route replace default via "${router%% *}" dev "$interface"
        # Unknown options reach the script as hex: opt224=68747470...
        [ -n "${opt224:-}" ] && printf '%s' "$opt224" > "$STATE.opt224"
    fi
    exit 0
fi

log() { echo "pinet-agent: $*" >&2; }

json_escape() { printf '%s' "$1" | tr -d '"\\' | tr '\n' ' '; }

post() {
    # post <endpoint> <json>
    wget -q -O /dev/null --header "Content-Type: application/json" --post-data "$2" "${BASE}$1" 2>/dev/null
}

fail() {
    log "$1"
    post failed "{\"error\": \"$(json_escape "$1")\"}"
    exit 1
}

event() {
    post events "{\"stage\": \"$(json_escape "$1")\", \"percent\": $2, \"message\": \"$(json_escape "${3:-}")\"}"
}

hex_to_text() {
    # busybox printf understands \xHH.
    printf "$(printf '%s' "$1" | sed 's/../\\x&/g')"
}

ensure_network() {
    # An address (and option 224, the boot URL) by DHCP, unless the interface has one already.
    iface=${PINET_IFACE:-eth0}
    ip -4 addr show dev "$iface" 2>/dev/null | grep -q "inet " && return 0
    rm -f "$STATE.opt224"
    ip link set "$iface" up 2>/dev/null
    udhcpc -i "$iface" -O 224 -n -q -t 8 -T 2 -s "$0" >/dev/null 2>&1
}

find_url() {
    [ -n "${PINET_URL:-}" ] && { echo "$PINET_URL"; return; }
    if [ -r /proc/cmdline ]; then
        for word in $(cat /proc/cmdline); do
            case "$word" in pinet.url=*) echo "${word#pinet.url=}"; return ;; esac
        done
    fi
    [ -s "$STATE.opt224" ] || return 1
    hex_to_text "$(cat "$STATE.opt224")"
}

ensure_network || log "no DHCP answer on ${PINET_IFACE:-eth0}"
URL=$(find_url) || { log "no boot URL: not on the kernel command line and no DHCP option 224"; exit 1; }
# The boot URL ends in "/?v=1"; endpoints hang off the part before the query.
BASE=${URL%%\?*}
case "$BASE" in */) ;; *) BASE="$BASE/" ;; esac
log "boot URL $BASE"

PLAN=$(wget -q -O - "${BASE}?format=env") || { log "cannot fetch the plan from $BASE"; exit 1; }
eval "$PLAN"
[ -n "${PINET_IMAGE_URL:-}" ] || fail "the plan has no image URL"
event "installer started" 1 "job $PINET_JOB on $PINET_HOSTNAME"

target=${PINET_TARGET:-}
if [ -z "$target" ]; then
    for candidate in $PINET_TARGETS; do
        [ -b "$candidate" ] && { target=$candidate; break; }
    done
fi
[ -n "$target" ] || fail "no target disk found (looked for $PINET_TARGETS)"
command -v zstd >/dev/null 2>&1 || fail "zstd is missing from the installer"

# Stream: download -> (sha256 of what arrived) -> decompress -> disk. Nothing is kept in memory.
fifo="$STATE.fifo"
rm -f "$fifo" "$STATE.sum"
mkfifo "$fifo" || fail "cannot create a pipe in ${STATE%/*}"
sha256sum < "$fifo" > "$STATE.sum" &
sum_pid=$!
wget -q -O - "$PINET_IMAGE_URL" | tee "$fifo" | zstd -dc -q > "$target"
written=$?
wait "$sum_pid"
rm -f "$fifo"
[ "$written" = 0 ] || fail "writing the image to $target failed"
actual=$(cut -d' ' -f1 "$STATE.sum")
[ "$actual" = "$PINET_IMAGE_SHA256" ] || fail "image checksum mismatch: expected $PINET_IMAGE_SHA256, got $actual"
sync
event "written and verified" 95 "sha256 $actual on $target"

configure_root() {
    # The installed system's name, network and SSH keys, written into its root partition.
    [ -b "$target" ] || { event "configuration skipped" 97 "$target is not a block device"; return 0; }
    blockdev --rereadpt "$target" 2>/dev/null
    sleep 1
    part=""
    for candidate in "${target}p2" "${target}2"; do
        [ -b "$candidate" ] && { part=$candidate; break; }
    done
    [ -n "$part" ] || { event "configuration skipped" 97 "no second partition on $target"; return 0; }
    mkdir -p /mnt/pinet-root
    mount -t ext4 "$part" /mnt/pinet-root 2>/dev/null \
        || { event "configuration skipped" 97 "cannot mount $part as ext4"; return 0; }
    root=/mnt/pinet-root
    printf '%s\n' "$PINET_HOSTNAME" > "$root/etc/hostname"
    if [ -d "$root/etc/netplan" ]; then
        wget -q -O "$root/etc/netplan/50-pinet.yaml" "$PINET_NETPLAN_URL" && chmod 600 "$root/etc/netplan/50-pinet.yaml"
    fi
    if [ -n "$PINET_SSH_KEYS" ]; then
        mkdir -p "$root/root/.ssh"
        printf '%s\n' "$PINET_SSH_KEYS" >> "$root/root/.ssh/authorized_keys"
        chmod 700 "$root/root/.ssh"
        chmod 600 "$root/root/.ssh/authorized_keys"
    fi
    sync
    umount "$root"
    event "configuration written" 97 "host name, network and SSH keys on $part"
}
configure_root

post done "{}" || fail "pinet did not take the done report"
log "done; the board now boots from $target"
if [ "${PINET_NO_REBOOT:-0}" != 1 ]; then
    reboot -f
fi
exit 0
