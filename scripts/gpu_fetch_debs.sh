#!/usr/bin/env bash
# Prepares, on this Debian 12 machine, what scripts/gpu_check.sh needs on a GPU machine that has PyTorch but no
# package registry: the Debian runtime + development packages daug builds against (everything but LibTorch, which
# comes from the GPU machine's pip torch), as a pruned sysroot tarball in .debs/ (git-ignored).
#   scripts/gpu_fetch_debs.sh           -> .debs/*.deb (downloaded with apt-get download) and .debs/sysroot.tar.xz
#   KEEP_DEBS=1 scripts/gpu_fetch_debs.sh   keeps the .deb files next to the tarball (gpu_check.sh takes either)
# The device tool carries at most 64 MiB with the working tree: this prints both sizes and fails above the limit.
set -euo pipefail
cd "$(dirname "$0")/.."
D=.debs
PKGS=(
  libboost1.74-dev libboost-program-options1.74-dev libboost-program-options1.74.0
  libfmt-dev libfmt9 libspdlog-dev libspdlog1.10 libtomlplusplus-dev libtomlplusplus3 nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian
  libpng-dev libpng16-16 libjpeg62-turbo-dev libjpeg62-turbo zlib1g-dev zlib1g libicu-dev libicu72
  libgloo-dev                  # headers only, when PyTorch's LibTorch ships no gloo/ (c10d's ProcessGroupGloo.hpp)
  libfaiss-dev                 # plugins/search_faiss: FAISS headers + the static libfaiss.a it links
  libblas3 liblapack3 libgfortran5 libquadmath0   # FAISS's BLAS/LAPACK at run time (reference: small; OpenBLAS adds 8 MB)
)
mkdir -p "$D"
grep -qx '/.debs/' .git/info/exclude 2>/dev/null || grep -qx '/.debs/' .gitignore || echo "note: add /.debs/ to .gitignore"
rm -f "$D"/*.deb
# apt-get download writes into the current directory; unsandboxed when _apt cannot write there (a warning only).
(cd "$D" && apt-get download "${PKGS[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
n=$(ls "$D"/*.deb | wc -l)
[ "$n" -eq "${#PKGS[@]}" ] || { echo "gpu_fetch_debs: expected ${#PKGS[@]} .deb files, got $n" >&2; exit 1; }
echo "gpu_fetch_debs: ${n} packages, $(du -cb "$D"/*.deb | tail -1 | cut -f1) bytes of .deb"

# The pruned sysroot: headers, shared libraries, the static libraries the build links (GoogleTest, benchmark),
# CMake/pkg-config files. No docs, no other static libraries (ICU's and Boost's are most of the size); libfaiss.a
# stays (FAISS ships no shared library; plugins/search_faiss links it into its module).
S=$(mktemp -d)
trap 'rm -rf "$S"' EXIT
for f in "$D"/*.deb; do dpkg-deb -x "$f" "$S/root"; done
R=$S/root
rm -rf "$R/usr/share/doc" "$R/usr/share/man" "$R/usr/share/lintian" "$R/usr/share/info"
find "$R" -name '*.a' ! -name 'libgtest*.a' ! -name 'libgmock*.a' ! -name 'libbenchmark*.a' ! -name 'libfaiss.a' -delete
tar -C "$R" -cJf "$D/sysroot.tar.xz" .
[ "${KEEP_DEBS:-0}" = 1 ] || rm -f "$D"/*.deb
tar_bytes=$(stat -c %s "$D/sysroot.tar.xz")
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
deb_bytes=$(du -cb "$D" | tail -1 | cut -f1)
total=$((tree_bytes + deb_bytes))
echo "gpu_fetch_debs: sysroot.tar.xz ${tar_bytes} bytes; .debs/ ${deb_bytes} bytes; working tree ${tree_bytes} bytes;" \
     "together $((total / 1048576)) MiB (the device tool carries at most 64 MiB)"
[ "$total" -le $((64 * 1048576)) ] || { echo "gpu_fetch_debs: over the 64 MiB carry limit" >&2; exit 1; }
