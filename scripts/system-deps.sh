#!/usr/bin/env bash
# Debian packages the tests and the digest need: chromium (browser tests, screenshots) and a
# CJK font (charts in the digest). Quick when they are present; installs them when run as root.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
fc-list 2>/dev/null | grep -qi "WenQuanYi Micro Hei" || need+=(fonts-wqy-microhei fontconfig)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "缺少系统软件包：${need[*]}。请以 root 运行：apt-get install -y ${need[*]}（相关测试会被跳过）" >&2
  exit 0
fi
echo "安装系统软件包：${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
