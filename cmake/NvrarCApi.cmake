# libnvrar_c.so: the C ABI (include/nvrar/nvrar_c.h) over nvrar_gpu, for Python (python/, through ctypes) and other
# foreign callers. Its RPATH holds $ORIGIN, so a copy beside libnvrar_gpu.so (the install prefix's lib folder, the
# Python package's nvrar/lib) finds it there.
add_library(nvrar_c SHARED src/capi/nvrar_c.cpp)
add_library(nvrar::c ALIAS nvrar_c)
target_include_directories(nvrar_c
  PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>
  PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
target_link_libraries(nvrar_c PRIVATE nvrar_gpu fmt::fmt)
target_compile_definitions(nvrar_c PRIVATE NVRAR_VERSION_STRING="${PROJECT_VERSION}")
target_compile_options(nvrar_c PRIVATE -Wall -Wextra)
set_target_properties(nvrar_c PROPERTIES BUILD_RPATH "$ORIGIN" INSTALL_RPATH "$ORIGIN")
