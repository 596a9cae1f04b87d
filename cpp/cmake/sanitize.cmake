# LATENTMF_SANITIZE=ON builds every C++ file of the extension with AddressSanitizer and
# UndefinedBehaviorSanitizer (GCC or Clang), for .ci/sanitize. Every undefined behaviour is fatal
# (-fno-sanitize-recover), so a report fails the run. Include before the targets are defined.
option(LATENTMF_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer (see .ci/sanitize)" OFF)
if(LATENTMF_SANITIZE)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(FATAL_ERROR "LATENTMF_SANITIZE needs GCC or Clang, not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()
