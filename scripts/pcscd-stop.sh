#!/usr/bin/env bash
# Stops the pcscd and slot bridges that scripts/pcscd-start.sh started, by the
# process ids it recorded; never a process it did not start.
#   --quiet  say nothing when there is nothing to stop
#   --kill   SIGKILL at once (a crash, for fault tests) instead of SIGTERM
set -uo pipefail

run_dir="${TALLY_PCSCD_RUN_DIR:-/run/tallystick-pcscd}"
quiet=0
signal=TERM
for arg in "$@"; do
  case "$arg" in
    --quiet) quiet=1 ;;
    --kill) signal=KILL ;;
    *) echo "pcscd-stop: unknown option $arg" >&2; exit 2 ;;
  esac
done

stopped=0
# running PID: alive and not a zombie (our parent may be slow to reap it)
running() {
  local state
  state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
  [ -n "$state" ] && [ "$state" != Z ]
}
# stop_pid FILE EXPECTED_NAME: the pid in FILE, if it is still that program
stop_pid() {
  local file="$1" name="$2" pid comm
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
  if [ -n "$pid" ] && [ "$comm" = "$name" ]; then
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 250); do running "$pid" || break; sleep 0.02; done
    running "$pid" && kill -KILL "$pid" 2>/dev/null
    stopped=$((stopped + 1))
    [ "$quiet" = 1 ] || echo "pcscd-stop: stopped $name (pid $pid)"
  fi
  rm -f "$file"
}

stop_pid "$run_dir/bridge0.pid" socat
stop_pid "$run_dir/bridge1.pid" socat
stop_pid "$run_dir/pcscd.pid" pcscd
rm -f "$run_dir/vpcd-slot0.sock" "$run_dir/vpcd-slot1.sock"
if [ "$stopped" = 0 ] && [ "$quiet" = 0 ]; then echo "pcscd-stop: nothing of ours was running"; fi
exit 0
