# Passed by scripts/setup.sh as CMAKE_PROJECT_INCLUDE when ROS 2 comes from the PyPI wheels.
#
# Each message wheel exports <pkg>::<pkg>__rosidl_generator_py with INTERFACE_INCLUDE_DIRECTORIES
# baked in from the wheel builder's Python (/opt/python/cp311-cp311/include/python3.11 and its
# numpy/_core/include). CMake refuses to generate a build that uses an imported target naming a
# missing directory, and no cache variable overrides an imported target's property. So once this
# directory is fully configured (every find_package done), swap those paths for this build's own
# Python and numpy headers: no root, no system-wide links, installed files left untouched.
cmake_language(DEFER CALL _fusion_use_own_python_includes "${CMAKE_CURRENT_SOURCE_DIR}")

function(_fusion_use_own_python_includes dir)
  set(builder_prefix "^/opt/python/cp3[0-9]+-cp3[0-9]+/")
  get_property(targets DIRECTORY "${dir}" PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(includes "${target}" INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT includes OR NOT includes MATCHES "(^|;)/opt/python/")
      continue()
    endif()
    # The interpreter rosidl_generator_py found (cached), so the same headers its own targets use.
    find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
    list(FILTER includes EXCLUDE REGEX "${builder_prefix}")
    list(APPEND includes ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
    set_target_properties("${target}" PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${includes}")
  endforeach()
endfunction()
