# Packaging: install rules (packaging/install.cmake) and the Debian packages built with `cpack -G DEB`.
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
# The synopsis line is CPACK_PACKAGE_DESCRIPTION_SUMMARY; CPack indents these lines under it.
set(CPACK_PACKAGE_DESCRIPTION "Lathe trains baseline models, applies optimization steps (pruning, distillation,
quantization, low-rank, batching policies), measures accuracy, latency, throughput
and memory on the CPU or a CUDA GPU, and keeps every run in a local SQLite database
for comparison and export. The package has the lathe workbench window (when built
with LATHE_UI), the headless lathe-cli, and example experiments in
/usr/share/lathe/experiments. The CUDA backend is the separate package lathe-cuda.")

# Two packages (CPack components): `lathe` (window, lathe-cli, liblathe_engine.so, experiments) and, with
# LATHE_CUDA, `lathe-cuda` (the module liblathe_cuda.so plus the CUDA runtime libraries it links, see
# install.cmake). lathe runs without lathe-cuda: the registry then says why CUDA is unavailable.
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL lathe)
if(LATHE_CUDA)
  list(APPEND CPACK_COMPONENTS_ALL cuda)
endif()
set(CPACK_DEBIAN_LATHE_PACKAGE_NAME lathe)
set(CPACK_DEBIAN_CUDA_PACKAGE_NAME lathe-cuda)
set(CPACK_COMPONENT_LATHE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_COMPONENT_CUDA_DESCRIPTION "The CUDA backend of Lathe as a module that lathe and lathe-cli load at run time
(/usr/lib/lathe/liblathe_cuda.so), with the CUDA runtime, cuBLAS and cuBLASLt
libraries it links (NVIDIA's redistributable CUDA ${CUDAToolkit_VERSION_MAJOR} libraries) in
/usr/lib/lathe/cuda. Running on a GPU needs NVIDIA's driver, which is not part of
this package.")
# The CUDA libraries are large: zstd packs them in a fraction of xz's time (dpkg >= 1.21.18 reads it).
set(CPACK_DEBIAN_COMPRESSION_TYPE zstd)
set(CPACK_THREADS 0)

# Depends on the shared libraries the binaries link, computed by dpkg-shlibdeps at package time. The
# engine and the CUDA libraries are private to the packages (lib/lathe); the -l folder lets
# dpkg-shlibdeps find the engine for the module, which is in the other package.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR}/lib)
# What dpkg-shlibdeps cannot see: Qt plugins loaded at run time (the xcb platform, the SVG icon engine
# for the toolbar icons).
set(_lathe_depends "")
if(LATHE_UI)
  list(APPEND _lathe_depends qt6-qpa-plugins libqt6svg6)
endif()
string(REPLACE ";" ", " CPACK_DEBIAN_LATHE_PACKAGE_DEPENDS "${_lathe_depends}")
# The demo experiments and the default --dataset fashion-mnist read this package's files.
set(CPACK_DEBIAN_LATHE_PACKAGE_RECOMMENDS dataset-fashion-mnist)
if(LATHE_CUDA)
  set(CPACK_DEBIAN_LATHE_PACKAGE_SUGGESTS lathe-cuda)
  # The module links the engine of the same build (engine/backends/cuda_module.h checks the version too).
  set(CPACK_DEBIAN_CUDA_PACKAGE_DEPENDS "lathe (= ${PROJECT_VERSION})")
  set(CPACK_DEBIAN_CUDA_PACKAGE_SECTION science)
endif()

include(CPack)
