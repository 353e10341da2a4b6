# Install rules for everything that is not a compiled target: desktop entry, icons, example experiments,
# the README. The executables install themselves (app/CMakeLists.txt). Included from CPackConfig.cmake.
include(GNUInstallDirs)

set(_lathe_src ${PROJECT_SOURCE_DIR})

if(LATHE_UI)
  install(FILES ${_lathe_src}/packaging/lathe.desktop DESTINATION ${CMAKE_INSTALL_DATADIR}/applications)
  # The hicolor theme: one PNG per size, plus the SVG for any other size.
  foreach(_size IN ITEMS 16 22 24 32 48 64 128 256 512)
    install(FILES ${_lathe_src}/resources/icons/app/lathe-${_size}.png
            DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor/${_size}x${_size}/apps
            RENAME lathe.png)
  endforeach()
  install(FILES ${_lathe_src}/resources/icons/lathe.svg
          DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor/scalable/apps)
endif()

# Example experiments: share/lathe/experiments is on the XDG data path (/usr/share, /usr/local/share),
# so an installed Lathe finds them as "lathe/experiments" there.
if(IS_DIRECTORY ${_lathe_src}/experiments)
  install(DIRECTORY ${_lathe_src}/experiments/ DESTINATION ${CMAKE_INSTALL_DATADIR}/lathe/experiments
          FILES_MATCHING PATTERN "*.json")
endif()

install(FILES ${_lathe_src}/README.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/lathe)

# The CUDA runtime, cuBLAS, cuBLASLt and cuSPARSE the module links (and nvJitLink, which cuSPARSE loads),
# copied from the toolkit into lib/lathe/cuda (the module's RPATH $ORIGIN/cuda) under their sonames: the
# lathe-cuda package then needs no toolkit.
# NVIDIA allows redistributing them with an application (CUDA EULA, Attachment A); the EULA goes along.
option(LATHE_CUDA_BUNDLE "Install the CUDA runtime libraries the CUDA module links beside it (lathe-cuda)" ON)
if(LATHE_CUDA AND LATHE_CUDA_BUNDLE)
  if(NOT CUDA_nvJitLink_LIBRARY) # FindCUDAToolkit names it from CMake 3.26 on
    find_library(CUDA_nvJitLink_LIBRARY nvJitLink HINTS ${CUDAToolkit_LIBRARY_DIR})
  endif()
  foreach(_lib IN ITEMS cudart cublas cublasLt cusparse nvJitLink)
    set(_path "${CUDA_${_lib}_LIBRARY}")
    if(NOT _path)
      message(FATAL_ERROR "LATHE_CUDA_BUNDLE: the toolkit's lib${_lib} was not found (CUDA_${_lib}_LIBRARY)")
    endif()
    file(REAL_PATH "${_path}" _real)
    # The soname is the lib<name>.so.<major> beside the library: cuSPARSE's major is not the toolkit's
    # (libcusparse.so.12 in CUDA 13).
    get_filename_component(_dir "${_path}" DIRECTORY)
    file(GLOB _sonames RELATIVE "${_dir}" "${_dir}/lib${_lib}.so.*")
    list(FILTER _sonames INCLUDE REGEX "^lib${_lib}\\.so\\.[0-9]+$")
    set(_soname lib${_lib}.so.${CUDAToolkit_VERSION_MAJOR})
    if(_sonames)
      list(GET _sonames 0 _soname)
    endif()
    install(FILES "${_real}" DESTINATION ${LATHE_INSTALL_PKGLIBDIR}/cuda RENAME ${_soname} COMPONENT cuda)
  endforeach()
  file(GLOB _lathe_cuda_eula "${CUDAToolkit_LIBRARY_ROOT}/EULA.txt"
       "${CUDAToolkit_LIBRARY_ROOT}/dist-info/nvidia_cuda_runtime-*/licenses/License.txt")
  if(_lathe_cuda_eula)
    list(GET _lathe_cuda_eula 0 _eula)
    install(FILES "${_eula}" DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/lathe-cuda RENAME NVIDIA-CUDA-EULA.txt
            COMPONENT cuda)
  endif()
endif()
