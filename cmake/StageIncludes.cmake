# Stages link one way, and their sources include one way: a file of stage S (src/S/**, include/sfc/S/**)
# may include "sfc/X/..." only when X comes before S in the stage order, or is S itself. A back edge
# (say output/ including a header of app/) fails the configure with one line per offending include.
#
# In a build: include(StageIncludes) then sfc_check_stage_includes(<source root> "<stage;stage;...>").
# As a script (tests/stage_check runs it on a tree with a planted back edge):
#   cmake -DSFC_ROOT=<source root> -DSFC_STAGES="core;mpi;..." -P cmake/StageIncludes.cmake

function(sfc_check_stage_includes root stages)
  set(violations "")
  list(JOIN stages " " order)
  foreach(stage IN LISTS stages)
    list(FIND stages ${stage} stage_index)
    file(GLOB_RECURSE files
      ${root}/src/${stage}/*.h ${root}/src/${stage}/*.cpp ${root}/src/${stage}/*.cu
      ${root}/include/sfc/${stage}/*.h)
    foreach(file IN LISTS files)
      file(STRINGS ${file} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"sfc/")
      foreach(line IN LISTS lines)
        string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"sfc/([^/\"]+)/.*" "\\1" included "${line}")
        list(FIND stages ${included} included_index)
        if(included_index EQUAL -1)
          list(APPEND violations "${file}: includes sfc/${included}/, which is no stage (${order})")
        elseif(included_index GREATER stage_index)
          list(APPEND violations
            "${file}: stage '${stage}' includes a header of the later stage '${included}' (${line})")
        endif()
      endforeach()
    endforeach()
  endforeach()
  # Every source folder must be a stage, or its files would escape the check.
  file(GLOB folders LIST_DIRECTORIES true ${root}/src/* ${root}/include/sfc/*)
  foreach(folder IN LISTS folders)
    if(IS_DIRECTORY ${folder})
      get_filename_component(name ${folder} NAME)
      list(FIND stages ${name} index)
      if(index EQUAL -1)
        list(APPEND violations "${folder}: a source folder that is not a stage (add it to SFC_STAGES in src/CMakeLists.txt)")
      endif()
    endif()
  endforeach()
  if(violations)
    list(JOIN violations "\n  " text)
    message(FATAL_ERROR "Stage order broken (stages in order: ${order}):\n  ${text}")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  if(NOT SFC_ROOT OR NOT SFC_STAGES)
    message(FATAL_ERROR "usage: cmake -DSFC_ROOT=<dir> -DSFC_STAGES=\"core;mpi;...\" -P StageIncludes.cmake")
  endif()
  sfc_check_stage_includes(${SFC_ROOT} "${SFC_STAGES}")
  message(STATUS "stage includes: no back edge under ${SFC_ROOT}")
endif()
