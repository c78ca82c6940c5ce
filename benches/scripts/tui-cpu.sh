#!/bin/sh
# CPU use of `lab tui` measured from /proc/<pid>/stat (utime+stime, clock ticks) over fixed
# windows, in tmux at 80x24: idle (observers only, no load, no input), with the session's
# default load, and during a drill started from the screen. Then a burst of keys during the
# drill checks that no input is dropped. Usage:
#   benches/scripts/tui-cpu.sh <lab binary> [instance] [port-base] [window-seconds]
# Uses (and leaves running) the instance; `lab down redis-sentinel --name <instance>` after.
set -eu
LAB=${1:?lab binary}
NAME=${2:-tui-cpu}
BASE=${3:-40500}
WIN=${4:-20}
S="tui-cpu-$$"
HZ=$(getconf CLK_TCK)
cleanup() { tmux kill-session -t "$S" 2>/dev/null || true; }
trap cleanup EXIT
"$LAB" up redis-sentinel --name "$NAME" --port-base "$BASE" >/dev/null
tmux new-session -d -s "$S" -x 80 -y 24 "$LAB tui redis-sentinel --name $NAME --no-load --report-dir /tmp/$S-reports 2>/tmp/$S.err; sleep 60"
wait_for() { # text, seconds
  i=0
  while ! tmux capture-pane -p -t "$S" | grep -q -- "$1"; do
    i=$((i+1)); [ $i -gt $(($2*4)) ] && { echo "timeout waiting for $1"; tmux capture-pane -p -t "$S"; exit 1; }
    sleep 0.25
  done
}
wait_for "sentinel-3" 120
PANE=$(tmux list-panes -t "$S" -F '#{pane_pid}')
PID=$(pgrep -P "$PANE" -x lab | head -1)
ticks() { awk '{print $14+$15}' /proc/"$PID"/stat; }
measure() { # label
  a=$(ticks); sleep "$WIN"; b=$(ticks)
  awk -v a="$a" -v b="$b" -v hz="$HZ" -v w="$WIN" -v l="$1" \
    'BEGIN { printf "%-34s %6.2f%% of one core (%d ticks of 1/%d s over %d s)\n", l, (b-a)/hz/w*100, b-a, hz, w }'
}
sleep 5
measure "idle (observers, no load)"
tmux send-keys -t "$S" w
sleep 3
measure "load 600 ops/s (session default)"
tmux send-keys -t "$S" w
tmux send-keys -t "$S" d
wait_for "Drill file" 10
tmux send-keys -t "$S" Enter
wait_for "drill redis-sentinel-master-kill" 30
measure "during the master-kill drill"
# 33 Down presses in one burst while the drill runs: from redis-1 (index 0 of 10 nodes) the
# selection must land on index 33 mod 10 = 3, redis-4, if no key is dropped.
i=0; while [ $i -lt 33 ]; do tmux send-keys -t "$S" Down; i=$((i+1)); done
sleep 2
if tmux capture-pane -p -t "$S" | grep -q ">redis-4 "; then
  echo "input under load: 33 keys in a burst, selection landed on redis-4 as expected (none dropped)"
else
  echo "input under load: selection NOT where expected"; tmux capture-pane -p -t "$S"
fi
wait_for "drill redis-sentinel-master-kill passed\|drill redis-sentinel-master-kill FAILED" 180
tmux capture-pane -p -t "$S" | grep -A2 "drill redis" || true
tmux send-keys -t "$S" q
sleep 1
tmux send-keys -t "$S" y
sleep 10
