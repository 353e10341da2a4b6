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

# The CUDA runtime, cuBLAS and cuBLASLt the module links, copied from the toolkit into lib/lathe/cuda
# (the module's RPATH $ORIGIN/cuda) under their sonames: the lathe-cuda package then needs no toolkit.
# NVIDIA allows redistributing them with an application (CUDA EULA, Attachment A); the EULA goes along.
option(LATHE_CUDA_BUNDLE "Install the CUDA runtime libraries the CUDA module links beside it (lathe-cuda)" ON)
if(LATHE_CUDA AND LATHE_CUDA_BUNDLE)
  foreach(_lib IN ITEMS cudart cublas cublasLt)
    set(_path "${CUDA_${_lib}_LIBRARY}")
    if(NOT _path)
      message(FATAL_ERROR "LATHE_CUDA_BUNDLE: the toolkit's lib${_lib} was not found (CUDA_${_lib}_LIBRARY)")
    endif()
    file(REAL_PATH "${_path}" _real)
    install(FILES "${_real}" DESTINATION ${LATHE_INSTALL_PKGLIBDIR}/cuda
            RENAME lib${_lib}.so.${CUDAToolkit_VERSION_MAJOR} COMPONENT cuda)
  endforeach()
  file(GLOB _lathe_cuda_eula "${CUDAToolkit_LIBRARY_ROOT}/EULA.txt"
       "${CUDAToolkit_LIBRARY_ROOT}/dist-info/nvidia_cuda_runtime-*/licenses/License.txt")
  if(_lathe_cuda_eula)
    list(GET _lathe_cuda_eula 0 _eula)
    install(FILES "${_eula}" DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/lathe-cuda RENAME NVIDIA-CUDA-EULA.txt
            COMPONENT cuda)
  endif()
endif()
