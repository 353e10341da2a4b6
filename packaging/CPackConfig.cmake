# Packaging: install rules (packaging/install.cmake) and a Debian package built with `cpack -G DEB`.
# Included at the end of the top-level CMakeLists.txt, so every target and option is known here.
include(${CMAKE_CURRENT_LIST_DIR}/install.cmake)

set(LATHE_PACKAGE_MAINTAINER "Lathe maintainers <maintainers@lathe.invalid>"
    CACHE STRING "Maintainer field of the Debian package")

set(CPACK_PACKAGE_NAME lathe)
set(CPACK_PACKAGE_VENDOR "Lathe")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${LATHE_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "workbench for inference-optimization experiments on neural networks")
set(CPACK_PACKAGE_INSTALL_DIRECTORY lathe)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build/" "/build-.*/" "/\\\\.cache/" "__pycache__")

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${LATHE_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
# The synopsis line is CPACK_PACKAGE_DESCRIPTION_SUMMARY; CPack indents these lines under it.
set(CPACK_PACKAGE_DESCRIPTION "Lathe trains baseline models, applies optimization steps (pruning, distillation,
quantization, low-rank, batching policies), measures accuracy, latency, throughput
and memory on the CPU or a CUDA GPU, and keeps every run in a local SQLite database
for comparison and export. The package has the lathe workbench window (when built
with LATHE_UI), the headless lathe-cli, and example experiments in
/usr/share/lathe/experiments.")

# Depends on the shared libraries the binaries link, computed by dpkg-shlibdeps at package time.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# What dpkg-shlibdeps cannot see: Qt plugins loaded at run time (the xcb platform, the SQLite driver
# the window's views use, the SVG icon engine for the toolbar icons).
set(_lathe_depends "")
if(LATHE_UI)
  list(APPEND _lathe_depends qt6-qpa-plugins libqt6sql6-sqlite libqt6svg6)
endif()

# The CUDA runtime, cuBLAS and cuBLASLt come from NVIDIA's toolkit. Installed from NVIDIA's .run file
# they belong to no Debian package, so dpkg-shlibdeps has nothing to name: CPack runs it with
# --ignore-missing-info and they are left out of Depends. Installed from NVIDIA's apt repository they do
# belong to a package, and that package is named here. Either way they must be on the loader path
# (ld.so.conf) where the package is installed, as NVIDIA's installers arrange.
if(LATHE_CUDA)
  set(_lathe_cuda_packages "")
  set(_lathe_cuda_unpackaged "")
  foreach(_lib IN ITEMS cudart cublas cublasLt)
    set(_path "${CUDA_${_lib}_LIBRARY}")
    if(NOT _path)
      continue()
    endif()
    file(REAL_PATH "${_path}" _real)
    set(_owner "")
    foreach(_candidate IN ITEMS "${_path}" "${_real}")
      execute_process(COMMAND dpkg-query -S "${_candidate}" OUTPUT_VARIABLE _out ERROR_QUIET
                      RESULT_VARIABLE _rc OUTPUT_STRIP_TRAILING_WHITESPACE)
      if(_rc EQUAL 0 AND _out MATCHES "^([^:,]+)[:,]")
        set(_owner "${CMAKE_MATCH_1}")
        break()
      endif()
    endforeach()
    if(_owner)
      list(APPEND _lathe_cuda_packages ${_owner})
    else()
      list(APPEND _lathe_cuda_unpackaged ${_lib})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES _lathe_cuda_packages)
  list(APPEND _lathe_depends ${_lathe_cuda_packages})
  if(_lathe_cuda_unpackaged)
    string(REPLACE ";" ", " _names "${_lathe_cuda_unpackaged}")
    message(STATUS "Lathe package: CUDA libraries not from a Debian package (${_names}) are not in Depends; "
                   "the target machine needs the CUDA ${CUDAToolkit_VERSION_MAJOR} toolkit libraries on its loader path")
  endif()
endif()
string(REPLACE ";" ", " CPACK_DEBIAN_PACKAGE_DEPENDS "${_lathe_depends}")
# The demo experiments and the default --dataset fashion-mnist read this package's files.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS dataset-fashion-mnist)

include(CPack)
