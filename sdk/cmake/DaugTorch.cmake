# Finding LibTorch for daug: Debian's CPU-only 1.13 (/usr) and PyTorch's pip LibTorch 2.x with CUDA
# (-DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')).
#   daug_prepare_torch()  before find_package(Torch): for a CUDA build of LibTorch, find nvcc and set the CUDA
#                         architectures (its CMake package enables the CUDA language and stops without a toolkit).
#   daug_check_torch()    after find_package(Torch): C++ ABI and standard, DAUG_TORCH_CUDA, DAUG_TORCH_CXX_FLAGS.
#   daug_include_before_torch(<targets>...)  after the dependencies are found: their headers win over copies that
#                         LibTorch bundles (pip wheels ship fmt 12 in torch/include; daug links Debian's fmt 9).
# The daug_torch_* functions only compute; tests/cmake/torch_checks_test.cmake checks them with `cmake -P`.
include_guard(GLOBAL)

# "-D_GLIBCXX_USE_CXX11_ABI=N" in `flags` -> N; "" when the flags do not say (the compiler's default, 1 on GCC >= 5).
function(daug_torch_cxx11_abi flags out)
  set(abi "")
  if(flags MATCHES "-D_GLIBCXX_USE_CXX11_ABI=([0-9]+)")
    set(abi "${CMAKE_MATCH_1}")
  endif()
  set(${out} "${abi}" PARENT_SCOPE)
endfunction()

# The message for a LibTorch whose C++ ABI is not the one Debian's libraries use (empty when it matches).
function(daug_torch_abi_error flags torch_where out)
  daug_torch_cxx11_abi("${flags}" abi)
  set(msg "")
  if(NOT abi STREQUAL "" AND NOT abi STREQUAL "1")
    string(CONCAT msg "LibTorch at ${torch_where} is built with _GLIBCXX_USE_CXX11_ABI=${abi} (TORCH_CXX_FLAGS "
            "'${flags}'), but daug links Debian's Boost, fmt, spdlog, toml++ and GoogleTest, which use "
            "_GLIBCXX_USE_CXX11_ABI=1: std::string and std::list would differ across the library boundary. Use a "
            "LibTorch with the cxx11 ABI (PyTorch's pip wheels since 2.7, or the 'cxx11 ABI' LibTorch zip).")
  endif()
  set(${out} "${msg}" PARENT_SCOPE)
endfunction()

# CMAKE_CUDA_ARCHITECTURES ("90", "80;90-real", "90a") -> TORCH_CUDA_ARCH_LIST ("9.0", "8.0;9.0", "9.0a").
function(daug_cuda_arch_list archs out)
  set(res "")
  foreach(a IN LISTS archs)
    if(NOT a MATCHES "^([0-9]+)([0-9])([af]?)(-real|-virtual)?$")
      message(FATAL_ERROR "DAUG_CUDA_ARCHITECTURES: '${a}' is not a CUDA architecture like 90, 90a or 80-real "
                          "(compute capability without the dot; 90 for H100/H200)")
    endif()
    list(APPEND res "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}${CMAKE_MATCH_3}")
  endforeach()
  set(${out} "${res}" PARENT_SCOPE)
endfunction()

# The C++ standard a LibTorch needs: 17, or 20 from 2.13 on (its ATen headers #error without C++20).
function(daug_torch_cxx_standard torch_version out)
  set(std 17)
  if(torch_version VERSION_GREATER_EQUAL 2.13)
    set(std 20)
  endif()
  set(${out} ${std} PARENT_SCOPE)
endfunction()

# Whether the Torch CMake package in `dir` (the folder of TorchConfig.cmake) is a CUDA build: its Caffe2Config
# says `set(CAFFE2_USE_CUDA ON)`, or libtorch_cuda.so sits in its lib folder. "" when `dir` has no TorchConfig.
function(daug_torch_config_is_cuda dir out)
  set(res "")
  if(EXISTS "${dir}/TorchConfig.cmake" OR EXISTS "${dir}/torch-config.cmake")
    set(res OFF)
    if(EXISTS "${dir}/../Caffe2/Caffe2Config.cmake")
      file(STRINGS "${dir}/../Caffe2/Caffe2Config.cmake" hits REGEX "set\\(CAFFE2_USE_CUDA[ \t]+(ON|1|TRUE|True)\\)")
      if(hits)
        set(res ON)
      endif()
    endif()
    # pip: torch/share/cmake/Torch -> torch/lib; a LibTorch zip: libtorch/share/cmake/Torch -> libtorch/lib
    if(EXISTS "${dir}/../../../lib/libtorch_cuda.so")
      set(res ON)
    endif()
  endif()
  set(${out} "${res}" PARENT_SCOPE)
endfunction()

# The folder find_package(Torch) will most likely use (Torch_DIR, then CMAKE_PREFIX_PATH, then the system's).
function(daug_torch_config_dir out)
  set(cands "")
  foreach(d IN ITEMS "${Torch_DIR}" "$ENV{Torch_DIR}")
    if(d)
      list(APPEND cands "${d}")
    endif()
  endforeach()
  string(REPLACE ":" ";" env_prefix "$ENV{CMAKE_PREFIX_PATH}")
  foreach(p IN LISTS CMAKE_PREFIX_PATH env_prefix ITEMS /usr /usr/local)
    if(p)
      list(APPEND cands "${p}/Torch" "${p}/share/cmake/Torch" "${p}/lib/cmake/Torch"
                        "${p}/lib/${CMAKE_LIBRARY_ARCHITECTURE}/cmake/Torch")
    endif()
  endforeach()
  set(found "")
  foreach(c IN LISTS cands)
    if(EXISTS "${c}/TorchConfig.cmake" OR EXISTS "${c}/torch-config.cmake")
      set(found "${c}")
      break()
    endif()
  endforeach()
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

macro(daug_prepare_torch)
  set(DAUG_CUDA_ARCHITECTURES "90" CACHE STRING
      "CUDA architectures when LibTorch is a CUDA build (90: H100/H200; 80: A100; '80;90' for both)")
  daug_torch_config_dir(_daug_torch_dir)
  daug_torch_config_is_cuda("${_daug_torch_dir}" _daug_torch_is_cuda)
  if(_daug_torch_is_cuda)
    message(STATUS "daug: LibTorch at ${_daug_torch_dir} is a CUDA build")
    if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
      find_program(DAUG_NVCC nvcc HINTS ENV CUDA_HOME ENV CUDA_PATH ENV CUDA_ROOT PATH_SUFFIXES bin
                   PATHS /usr/local/cuda /opt/cuda)
      if(NOT DAUG_NVCC)
        message(FATAL_ERROR "LibTorch at ${_daug_torch_dir} is a CUDA build, and its CMake package needs the CUDA "
                            "toolkit (nvcc) to configure, but no nvcc was found on PATH, in $CUDA_HOME/bin or in "
                            "/usr/local/cuda/bin. Set CUDA_HOME or pass -DCMAKE_CUDA_COMPILER=/path/to/nvcc.")
      endif()
      set(CMAKE_CUDA_COMPILER "${DAUG_NVCC}" CACHE FILEPATH "CUDA compiler (found by daug_prepare_torch)")
    endif()
    set(_daug_nvcc "${CMAKE_CUDA_COMPILER}")
    if(NOT _daug_nvcc)
      set(_daug_nvcc "$ENV{CUDACXX}")
    endif()
    if(NOT DEFINED ENV{CUDA_HOME} AND _daug_nvcc)
      get_filename_component(_daug_cuda_home "${_daug_nvcc}" DIRECTORY)
      get_filename_component(_daug_cuda_home "${_daug_cuda_home}" DIRECTORY)
      set(ENV{CUDA_HOME} "${_daug_cuda_home}")  # Torch's cuda.cmake and FindCUDAToolkit look here
    endif()
    if(NOT CUDAToolkit_ROOT AND DEFINED ENV{CUDA_HOME})
      set(CUDAToolkit_ROOT "$ENV{CUDA_HOME}")
    endif()
    if(NOT CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "${DAUG_CUDA_ARCHITECTURES}")
    endif()
    if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})  # else Torch's CMake probes the GPU of the build machine
      daug_cuda_arch_list("${CMAKE_CUDA_ARCHITECTURES}" _daug_arch_list)
      set(ENV{TORCH_CUDA_ARCH_LIST} "${_daug_arch_list}")
    endif()
    message(STATUS "daug: CUDA compiler ${_daug_nvcc}, CUDA_HOME $ENV{CUDA_HOME}, architectures "
                   "${CMAKE_CUDA_ARCHITECTURES} (TORCH_CUDA_ARCH_LIST $ENV{TORCH_CUDA_ARCH_LIST})")
  endif()
endmacro()

macro(daug_check_torch)
  daug_torch_abi_error("${TORCH_CXX_FLAGS}" "${TORCH_INSTALL_PREFIX}" _daug_abi_error)
  if(_daug_abi_error)
    message(FATAL_ERROR "${_daug_abi_error}")
  endif()
  daug_torch_cxx11_abi("${TORCH_CXX_FLAGS}" DAUG_TORCH_CXX11_ABI)
  if(DAUG_TORCH_CXX11_ABI STREQUAL "")
    set(DAUG_TORCH_CXX11_ABI 1)
  endif()
  # Flags for commands that compile outside CMake's targets (tests/sdk compile-fail cases).
  set(DAUG_TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=${DAUG_TORCH_CXX11_ABI}")
  daug_torch_cxx_standard("${Torch_VERSION}" _daug_std)
  if(NOT CMAKE_CXX_STANDARD OR CMAKE_CXX_STANDARD LESS _daug_std)
    set(CMAKE_CXX_STANDARD ${_daug_std})
  endif()
  if(CAFFE2_USE_CUDA OR TORCH_CUDA_LIBRARIES)
    set(DAUG_TORCH_CUDA ON)
  else()
    set(DAUG_TORCH_CUDA OFF)
  endif()
  message(STATUS "daug: LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX}, CUDA ${DAUG_TORCH_CUDA}, "
                 "_GLIBCXX_USE_CXX11_ABI=${DAUG_TORCH_CXX11_ABI}, C++${CMAKE_CXX_STANDARD}")
endmacro()

# Pure part of daug_include_before_torch: for each name in DAUG_SHADOWABLE_HEADERS present both in one of
# `torch_dirs` and in one of `dep_dirs` (a different folder), "<name>=<dep dir>/<name>" in `out`.
function(daug_shadowed_headers torch_dirs dep_dirs out)
  # The names under LibTorch's include folders that may shadow a dependency's headers of the same name.
  set(DAUG_SHADOWABLE_HEADERS fmt spdlog nlohmann toml++ boost gtest gmock benchmark png.h jpeglib.h unicode zlib.h)
  set(res "")
  set(done "")
  foreach(name IN LISTS DAUG_SHADOWABLE_HEADERS)
    foreach(t IN LISTS torch_dirs)
      if(NOT EXISTS "${t}/${name}" OR name IN_LIST done)
        continue()
      endif()
      foreach(d IN LISTS dep_dirs)
        get_filename_component(dr "${d}" REALPATH)
        get_filename_component(tr "${t}" REALPATH)
        if(NOT dr STREQUAL tr AND EXISTS "${d}/${name}" AND NOT name IN_LIST done)
          list(APPEND res "${name}=${d}/${name}")
          list(APPEND done "${name}")
        endif()
      endforeach()
    endforeach()
  endforeach()
  set(${out} "${res}" PARENT_SCOPE)
endfunction()

# Puts the headers of `targets` (fmt::fmt, spdlog::spdlog, ...) that LibTorch also bundles ahead of LibTorch's
# include folders for every target of this directory and below. CMake drops implicit folders such as /usr/include
# from the command line and the compiler searches -isystem folders before them, so a plain include-order change
# cannot do it: links to the dependency's own folders go into <build>/daug_include_first, added BEFORE as SYSTEM.
# With Debian's LibTorch (headers in /usr/include like the rest) nothing clashes and nothing is added.
function(daug_include_before_torch)
  get_target_property(torch_dirs torch INTERFACE_INCLUDE_DIRECTORIES)
  set(dep_dirs "")
  foreach(tgt IN LISTS ARGN)
    if(TARGET ${tgt})
      get_target_property(dirs ${tgt} INTERFACE_INCLUDE_DIRECTORIES)
      foreach(d IN LISTS dirs)
        if(d AND NOT d MATCHES "\\$<")
          list(APPEND dep_dirs "${d}")
        endif()
      endforeach()
    endif()
  endforeach()
  foreach(d IN LISTS CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)  # where a header-only dependency without a target is
    list(APPEND dep_dirs "${d}")
  endforeach()
  daug_shadowed_headers("${torch_dirs}" "${dep_dirs}" pairs)
  set(farm "${CMAKE_BINARY_DIR}/daug_include_first")
  file(REMOVE_RECURSE "${farm}")
  if(pairs)
    file(MAKE_DIRECTORY "${farm}")
    foreach(p IN LISTS pairs)
      string(REGEX MATCH "^([^=]+)=(.*)$" _ "${p}")
      file(CREATE_LINK "${CMAKE_MATCH_2}" "${farm}/${CMAKE_MATCH_1}" SYMBOLIC)
    endforeach()
    include_directories(BEFORE SYSTEM "${farm}")
    message(STATUS "daug: headers ahead of LibTorch's bundled copies: ${pairs}")
  endif()
  set(DAUG_INCLUDE_FIRST_DIR "${farm}" PARENT_SCOPE)
  set(DAUG_INCLUDE_FIRST "${pairs}" PARENT_SCOPE)
endfunction()
