#!/usr/bin/env bash
# Installs every system package daug needs on Debian 12 (idempotent: re-running is a no-op when all are present).
# Extra package names given as arguments are installed the same way (scripts/fuzz.sh adds clang and its runtimes).
set -euo pipefail
PKGS=(
  g++ cmake ninja-build ccache pkg-config
  libtorch-dev                 # LibTorch 1.13 (CPU)
  libgloo-dev                  # headers of Gloo, c10d's CPU backend (distributed launches)
  libopenblas0-openmp          # optimised BLAS: libtorch calls libblas.so.3, reference BLAS is ~30x slower
  libboost-dev libboost-program-options-dev   # Boost.DLL (header-only with BOOST_DLL_USE_STD_FS), Program_options
  libtomlplusplus-dev libfmt-dev libspdlog-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpng-dev libjpeg-dev zlib1g-dev libicu-dev
  libfaiss-dev                 # FAISS 1.7.3 (static libfaiss.a + headers): the `faiss` VectorSearch plugin
  libdcmtk-dev                 # DICOM input through DCMTK 3.6.7 (libs/data dicom.h); libdcmtk17 has its dictionary
  dcmtk                        # img2dcm/dcmodify: tests/retrieval writes DICOM queries from NIH PNGs with DCMTK's tools
  python3-numpy python3-pil    # tests/retrieval: independent numpy checks of query results; PNG->BMP for img2dcm
  chromium                     # headless rendering check of the HTML report (tests/report)
  python3                      # small helpers of the distributed pipeline tests (free port, JSON); libtorch-dev pulls it in too
  "$@"
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
