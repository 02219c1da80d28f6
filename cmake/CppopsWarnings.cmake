# Warning and sanitizer flags, applied per target so that code running inside other people's processes (the
# shared agent) can opt out of sanitizers while everything else opts in.

# No -Wnull-dereference: GCC 12 reports it inside nlohmann::json at -O2 for code that is fine.
function(cppops_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wcast-align -Wformat=2
                                           -Wimplicit-fallthrough $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor>)
  if(CPPOPS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Applies CPPOPS_SANITIZE to a target that runs in a process we start ourselves (CLI, tests, test targets).
function(cppops_sanitize target)
  if(CPPOPS_SANITIZE STREQUAL "address")
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                             -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  elseif(CPPOPS_SANITIZE STREQUAL "thread")
    target_compile_options(${target} PRIVATE -fsanitize=thread -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=thread)
  elseif(NOT CPPOPS_SANITIZE STREQUAL "")
    message(FATAL_ERROR "CPPOPS_SANITIZE must be '', 'address' or 'thread', not '${CPPOPS_SANITIZE}'")
  endif()
endfunction()
