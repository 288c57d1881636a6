# Cross-build for 64-bit Windows with Debian's mingw-w64 (package mingw-w64).
# Tests run under Wine: ctest prefixes every test command with the emulator.
#   cmake --preset mingw     (see CMakePresets.json; scripts/test-windows.sh)
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(RQ_MINGW_TRIPLET x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${RQ_MINGW_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${RQ_MINGW_TRIPLET}-g++)
set(CMAKE_RC_COMPILER ${RQ_MINGW_TRIPLET}-windres)

# Headers and libraries of the target come from the mingw sysroot (and from
# the locally built cmocka, see scripts/mingw-deps.sh), programs from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${RQ_MINGW_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

if(NOT DEFINED CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(RQ_WINE NAMES wine wine64)
  if(RQ_WINE)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${RQ_WINE})
  endif()
endif()

# Static runtime (libgcc, winpthread): the programs then run from any
# directory under Wine or Windows without the mingw DLLs beside them.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
