# cmake -DDAUG_SOURCE_DIR=<repo> -DWORK=<dir> -P torch_checks_test.cmake: the computing functions of DaugTorch.cmake.
cmake_policy(VERSION 3.18)
include(${DAUG_SOURCE_DIR}/sdk/cmake/DaugTorch.cmake)
set(failures 0)
macro(expect what got want)
  if(NOT "${got}" STREQUAL "${want}")
    message(SEND_ERROR "${what}: expected '${want}', got '${got}'")
    math(EXPR failures "${failures} + 1")
  endif()
endmacro()

# The ABI flag from TORCH_CXX_FLAGS (pip 2.x: =1; pre-2.7 wheels: =0; some builds state none).
daug_torch_cxx11_abi("-D_GLIBCXX_USE_CXX11_ABI=1" a)
expect("abi of =1" "${a}" "1")
daug_torch_cxx11_abi("-fPIC -D_GLIBCXX_USE_CXX11_ABI=0 -O2" a)
expect("abi of =0" "${a}" "0")
daug_torch_cxx11_abi("" a)
expect("abi not stated" "${a}" "")
daug_torch_abi_error("-D_GLIBCXX_USE_CXX11_ABI=1" "/t" e)
expect("no error for =1" "${e}" "")
daug_torch_abi_error("" "/t" e)
expect("no error when not stated" "${e}" "")
daug_torch_abi_error("-D_GLIBCXX_USE_CXX11_ABI=0" "/opt/libtorch" e)
foreach(needle "/opt/libtorch" "_GLIBCXX_USE_CXX11_ABI=0" "use _GLIBCXX_USE_CXX11_ABI=1" "cxx11 ABI")
  string(FIND "${e}" "${needle}" pos)
  if(pos EQUAL -1)
    message(SEND_ERROR "ABI error message lacks '${needle}': ${e}")
    math(EXPR failures "${failures} + 1")
  endif()
endforeach()

# CMAKE_CUDA_ARCHITECTURES -> TORCH_CUDA_ARCH_LIST.
daug_cuda_arch_list("90" l)
expect("arch 90" "${l}" "9.0")
daug_cuda_arch_list("80;90-real;90a;100" l)
expect("arch list" "${l}" "8.0;9.0;9.0a;10.0")

# C++ standard: 17 up to 2.12, 20 from 2.13.
foreach(pair "1.13.1=17" "2.11.0=17" "2.12.1=17" "2.13.0=20" "2.14.0a0=20" "3.0=20")
  string(REPLACE "=" ";" p "${pair}")
  list(GET p 0 v)
  list(GET p 1 want)
  daug_torch_cxx_standard("${v}" s)
  expect("C++ standard for ${v}" "${s}" "${want}")
endforeach()

# CUDA detection from a Torch CMake package folder: Debian's real one (CPU), and fake pip layouts.
if(EXISTS /usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake)
  daug_torch_config_is_cuda(/usr/lib/x86_64-linux-gnu/cmake/Torch c)
  expect("Debian's LibTorch" "${c}" "OFF")
endif()
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/cu/share/cmake/Torch" "${WORK}/cu/share/cmake/Caffe2" "${WORK}/so/share/cmake/Torch"
     "${WORK}/so/lib")
file(WRITE "${WORK}/cu/share/cmake/Torch/TorchConfig.cmake" "")
file(WRITE "${WORK}/cu/share/cmake/Caffe2/Caffe2Config.cmake" "if(ON)\n  set(CAFFE2_USE_CUDA ON)\nendif()\n")
file(WRITE "${WORK}/so/share/cmake/Torch/TorchConfig.cmake" "")
file(WRITE "${WORK}/so/lib/libtorch_cuda.so" "")
daug_torch_config_is_cuda("${WORK}/cu/share/cmake/Torch" c)
expect("Caffe2Config says CUDA" "${c}" "ON")
daug_torch_config_is_cuda("${WORK}/so/share/cmake/Torch" c)
expect("libtorch_cuda.so present" "${c}" "ON")
daug_torch_config_is_cuda("${WORK}/nothing" c)
expect("no TorchConfig" "${c}" "")
# The folder find_package(Torch) would use, from a pip-style CMAKE_PREFIX_PATH (torch.utils.cmake_prefix_path).
set(CMAKE_PREFIX_PATH "${WORK}/missing;${WORK}/cu/share/cmake")
daug_torch_config_dir(d)
expect("config dir from CMAKE_PREFIX_PATH" "${d}" "${WORK}/cu/share/cmake/Torch")

# Which bundled headers shadow a dependency's: only names that both hold, never the same folder twice.
file(MAKE_DIRECTORY "${WORK}/torch/include/fmt" "${WORK}/torch/include/ATen" "${WORK}/deb/include/fmt"
     "${WORK}/deb/include/ATen" "${WORK}/deb/include/spdlog")
daug_shadowed_headers("${WORK}/torch/include;${WORK}/torch/include/torch/csrc/api/include"
                      "${WORK}/deb/include;${WORK}/torch/include" pairs)
expect("shadowed headers" "${pairs}" "fmt=${WORK}/deb/include/fmt")
daug_shadowed_headers("${WORK}/deb/include" "${WORK}/deb/include" pairs)
expect("Debian layout: nothing to do" "${pairs}" "")

if(failures GREATER 0)
  message(FATAL_ERROR "${failures} check(s) failed")
endif()
message(STATUS "all DaugTorch checks passed")
