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
