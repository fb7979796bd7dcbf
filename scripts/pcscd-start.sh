#!/usr/bin/env bash
# Starts pcscd with tallystick's vpcd reader file (config/pcscd/reader.conf.d) for virtual
# cards, and stops it again with scripts/pcscd-stop.sh (by process id).
#
# pcscd runs in the foreground inside a private network namespace that holds
# only loopback: vpcd (in server mode) listens there on ports 35963 and 35964,
# one per slot, and no host interface can reach them. One socat bridge per slot
# joins that namespace and offers the slot as a Unix socket in the run
# directory, which is where the virtual card connects (`tally sim card`).
# (vpcd 3.3's reverse mode, which would avoid the namespace, aborts pcscd as
# soon as a card disconnects, so it cannot model a removed card.)
#
# pcscd's client socket is fixed at /run/pcscd/pcscd.comm: one pcscd serves the
# machine. If a pcscd we did not start is running, this script says so and
# exits 3 without touching it.
#
# Environment:
#   TALLY_PCSCD_RUN_DIR  sockets, logs and pid files (default /run/tallystick-pcscd)
#   TALLY_PCSCD_CONFIG   reader-file folder (default <repo>/config/pcscd/reader.conf.d)
#   TALLY_PCSCD_DEBUG=1  pcscd logs at debug level with APDUs
#   TALLY_PCSCD_QUICKACK=0  leave delayed ACKs on (stock latency, 44 ms an APDU)
# Prints "pcscd <pid>" and "slot<N> <socket> <bridge pid>" lines when ready.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run_dir="${TALLY_PCSCD_RUN_DIR:-/run/tallystick-pcscd}"
config_dir="${TALLY_PCSCD_CONFIG:-$root/config/pcscd/reader.conf.d}"
pcscd_bin="$(command -v pcscd || echo /usr/sbin/pcscd)"

fail() { echo "pcscd-start: $*" >&2; exit "${2:-1}"; }

[ -x "$pcscd_bin" ] || fail "pcscd is not installed (bash scripts/setup.sh)"
command -v socat >/dev/null || fail "socat is not installed (bash scripts/setup.sh)"
command -v ip >/dev/null || fail "ip is not installed (apt-get install iproute2)"
command -v unshare >/dev/null && command -v nsenter >/dev/null || fail "unshare/nsenter are not installed (apt-get install util-linux)"
[ "$(id -u)" = 0 ] || fail "needs root: pcscd's socket lives in /run/pcscd and the network namespace needs CAP_SYS_ADMIN"
[ -d "$config_dir" ] || fail "no reader-file folder at $config_dir"
reader_file="$(find "$config_dir" -maxdepth 1 -type f | head -n 1)"
[ -n "$reader_file" ] || fail "no reader file in $config_dir"
base_port=$(( $(awk '$1 == "CHANNELID" { print $2 }' "$reader_file") ))
[ "$base_port" -gt 0 ] || fail "no CHANNELID in $reader_file"

mkdir -p "$run_dir"
# an earlier run of ours (perhaps killed): stop what is left of it, by pid
TALLY_PCSCD_RUN_DIR="$run_dir" "$root/scripts/pcscd-stop.sh" --quiet

if [ -f /run/pcscd/pcscd.pid ]; then
  # pcscd pads its pid file with a NUL
  other="$(tr -d '\0\n ' < /run/pcscd/pcscd.pid 2>/dev/null || true)"
  other_state="$(sed 's/.*) //' "/proc/$other/stat" 2>/dev/null | cut -d' ' -f1 || true)"
  if [ -n "$other" ] && [ -n "$other_state" ] && [ "$other_state" != Z ]; then
    fail "a pcscd not started by tallystick is running (pid $other, $(tr '\0' ' ' < /proc/"$other"/cmdline 2>/dev/null)); stop it first (e.g. systemctl stop pcscd.socket pcscd), it is left alone" 3
  fi
  # left by a pcscd that died (or is a zombie not reaped yet): pcscd itself would refuse to start
  rm -f /run/pcscd/pcscd.pid
fi
if [ -S /run/pcscd/pcscd.comm ]; then
  # a pcscd that answers on the socket is alive, pid file or not (it may not have written it yet)
  if socat -u OPEN:/dev/null UNIX-CONNECT:/run/pcscd/pcscd.comm 2>/dev/null; then
    fail "a pcscd not started by tallystick answers on /run/pcscd/pcscd.comm; stop it first (e.g. systemctl stop pcscd.socket pcscd), it is left alone" 3
  fi
  rm -f /run/pcscd/pcscd.comm
fi

log="$run_dir/pcscd.log"
level=--info
[ "${TALLY_PCSCD_DEBUG:-0}" = 1 ] && level="--debug --apdu"
# unshare and sh exec into pcscd, so $! is pcscd's pid
# vpcd 3.3 writes each message as two send() calls (length, then body) with
# Nagle on, so the body waits for the ACK of the length, which the receiver
# delays by 40 ms: 44 ms an APDU. quickack on the namespace's loopback routes
# makes the bridge ACK at once (measured: p50 44 ms -> well under 1 ms).
# TALLY_PCSCD_QUICKACK=0 keeps the stock behaviour, for comparison.
net_setup='ip link set lo up'
if [ "${TALLY_PCSCD_QUICKACK:-1}" = 1 ]; then
  net_setup="$net_setup"' && ip route change local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1 quickack 1'
  net_setup="$net_setup"' && ip route change local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1 quickack 1'
fi
# shellcheck disable=SC2086
# truncate here, not in the background job: its redirection may come after our first look
: > "$log"
unshare --net sh -c "$net_setup"' && exec "$0" --foreground '"$level"' --config "$1"' "$pcscd_bin" "$config_dir" \
  </dev/null >>"$log" 2>&1 &
pcscd_pid=$!
echo "$pcscd_pid" > "$run_dir/pcscd.pid"

for _ in $(seq 1 200); do
  grep -q 'daemon ready' "$log" 2>/dev/null && break
  [ "$(sed 's/.*) //' "/proc/$pcscd_pid/stat" 2>/dev/null | cut -d' ' -f1)" != Z ] && kill -0 "$pcscd_pid" 2>/dev/null || { cat "$log" >&2; rm -f "$run_dir/pcscd.pid"; fail "pcscd exited at start (log above)"; }
  sleep 0.05
done
grep -q 'daemon ready' "$log" || fail "pcscd not ready after 10 s (log: $log)"
echo "pcscd $pcscd_pid"

for slot in 0 1; do
  sock="$run_dir/vpcd-slot$slot.sock"
  nsenter --net="/proc/$pcscd_pid/ns/net" \
    socat "UNIX-LISTEN:$sock,fork,unlink-early,mode=600" "TCP:127.0.0.1:$((base_port + slot)),nodelay" \
    </dev/null >"$run_dir/bridge$slot.log" 2>&1 &
  echo $! > "$run_dir/bridge$slot.pid"
done
for slot in 0 1; do
  sock="$run_dir/vpcd-slot$slot.sock"
  for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.02; done
  [ -S "$sock" ] || fail "bridge for slot $slot did not start (log: $run_dir/bridge$slot.log)"
  echo "slot$slot $sock $(cat "$run_dir/bridge$slot.pid")"
done
