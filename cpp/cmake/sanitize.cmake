# LATENTMF_SANITIZE=ON builds every C++ file (the extension and the core's tests) with
# AddressSanitizer and UndefinedBehaviorSanitizer (GCC or Clang), for .ci/sanitize. Every undefined
# behaviour is fatal (-fno-sanitize-recover), so a report fails the run.
#
# LATENTMF_SANITIZE_THREAD=ON builds them with ThreadSanitizer instead, for the core's tests of
# what threads share (the active instruction-set level). It needs LATENTMF_OPENMP=OFF: the OpenMP
# runtimes are not instrumented, so TSan cannot see their barriers and reports the data that
# parallel loops hand from thread to thread as races.
#
# Include before the targets are defined.
option(LATENTMF_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer (see .ci/sanitize)" OFF)
option(LATENTMF_SANITIZE_THREAD "Build with ThreadSanitizer, OpenMP off (see .ci/sanitize)" OFF)
if((LATENTMF_SANITIZE OR LATENTMF_SANITIZE_THREAD) AND NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  message(FATAL_ERROR "the sanitizers need GCC or Clang, not ${CMAKE_CXX_COMPILER_ID}")
endif()
if(LATENTMF_SANITIZE AND LATENTMF_SANITIZE_THREAD)
  message(FATAL_ERROR "LATENTMF_SANITIZE and LATENTMF_SANITIZE_THREAD exclude each other (ASan and TSan cannot share a process)")
endif()
if(LATENTMF_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()
if(LATENTMF_SANITIZE_THREAD)
  if(LATENTMF_OPENMP)
    message(FATAL_ERROR "LATENTMF_SANITIZE_THREAD needs -DLATENTMF_OPENMP=OFF (ThreadSanitizer cannot see into the OpenMP runtime)")
  endif()
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=thread)
endif()
