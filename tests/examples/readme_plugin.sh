#!/usr/bin/env bash
# The README's "complete guidance plugin" as a new user meets it: the blocks marked <!-- example-file: NAME --> are
# written to NAME, built against the INSTALLED SDK (find_package(daug)), and loaded by the INSTALLED daug, started
# outside the build tree with no LD_LIBRARY_PATH. Args: BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd -P)
src=$(cd "$2" && pwd -P)
work=$build/_readme_plugin
rm -rf "$work"
mkdir -p "$work/src"
prefix=$work/install
cmake --install "$build" --prefix "$prefix" > "$work/install.log"

# Extract: a marker line names the file; the next fenced block (``` ... ```) is its content.
awk -v out="$work/src" '
  /^<!-- example-file: .* -->$/ { name = $3; pending = 1; next }
  pending && /^```/ { pending = 0; inside = 1; file = out "/" name; printf "" > file; n++; next }
  inside && /^```$/ { inside = 0; close(file); next }
  inside { print >> file }
  END { if (inside) { print "README: unterminated block for " name > "/dev/stderr"; exit 1 } print n }
' "$src/README.md" > "$work/count"
for f in my_guidance.cpp CMakeLists.txt; do
  [[ -s $work/src/$f ]] || { echo "README.md has no block marked <!-- example-file: $f -->"; exit 1; }
done

launcher=()
if command -v ccache > /dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  "${launcher[@]}" > "$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" 2>&1 | tail -n 40

cd "$(mktemp -d)"  # nowhere near the build tree
daug=(env -u LD_LIBRARY_PATH "$prefix/bin/daug" --plugin-path "$work/build/plugins")
list=$("${daug[@]}" plugins list)
grep -q "^Guidance  *my_guidance  *one-line summary  *$work/build/plugins/" <<< "$list" \
  || { echo "my_guidance not listed from $work/build/plugins:"; echo "$list"; exit 1; }
# The installed daug loads its own installed plugins, not the build tree's.
grep -q "softmax .*$prefix/" <<< "$list" || { echo "installed plugins not loaded from $prefix:"; echo "$list"; exit 1; }
if grep -q "$build/plugins/" <<< "$list"; then echo "the installed daug loaded build-tree plugins:"; echo "$list"; exit 1; fi
described=$("${daug[@]}" plugins describe my_guidance)
grep -q "scale : float = 100.0" <<< "$described" || { echo "$described"; exit 1; }
echo "README plugin example OK"
