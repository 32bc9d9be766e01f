#!/usr/bin/env bash
# First run: a fresh clone of this checkout, `make run` until the console's login page answers
# (/login, which renders a template: more than /health), then Ctrl+C.
# Usage: bash bench/first_run.sh [PORT]  (default 8765; uses its own clone in a temporary folder,
# so the checkout's .venv and var/ are untouched). Appends the figure to bench/results/first_run.md.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
port=${1:-8765}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/yuqing"
cd "$work/yuqing"
start=$(date +%s.%N)
YUQING_API_PORT=$port setsid make run > "$work/run.log" 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$port/login" >/dev/null; do
  sleep 0.5
  kill -0 $pid 2>/dev/null || { echo "make run stopped; see its output:"; cat "$work/run.log"; exit 1; }
done
seconds=$(echo "$(date +%s.%N) - $start" | bc)
kill -INT -- -$pid
wait $pid || true
load=$(cut -d' ' -f1-3 /proc/loadavg)
line="| $(date -u +%Y-%m-%dT%H:%MZ) | $(git -C "$repo" rev-parse --short HEAD) | ${seconds%.*} s | $(nproc) cores, load $load |"
echo "$line"
echo "$line" >> "$repo/bench/results/first_run.md"
