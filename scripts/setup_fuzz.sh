#!/usr/bin/env bash
# Installs what scripts/fuzz.sh needs on top of scripts/setup.sh: clang and its libFuzzer/sanitizer runtimes
# (Debian 12: clang 14, libclang_rt.fuzzer-x86_64.a in libclang-rt-14-dev). Idempotent. Not part of the normal
# setup: the default build and CI use g++ only.
set -euo pipefail
PKGS=(clang libclang-rt-14-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup_fuzz: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup_fuzz: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
