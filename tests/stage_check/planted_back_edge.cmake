# The stage include check (cmake/StageIncludes.cmake) on a copy of src/ and include/: the copy as it
# is passes; with one planted back edge (output including a header of app, the edge this check was
# made for) it fails and names the file and both stages.
#   cmake -DSFC_SOURCE=<repo> -DSFC_STAGES_CSV=core,mpi,... -P planted_back_edge.cmake
string(REPLACE "," ";" stages "${SFC_STAGES_CSV}")
string(RANDOM LENGTH 8 tag)
set(copy "$ENV{TMPDIR}")
if(NOT copy)
  set(copy "/tmp")
endif()
set(copy "${copy}/sfc-stage-check-${tag}")
file(COPY ${SFC_SOURCE}/src ${SFC_SOURCE}/include DESTINATION ${copy})

function(run_check out_rc out_text)
  execute_process(
    COMMAND ${CMAKE_COMMAND} -DSFC_ROOT=${copy} "-DSFC_STAGES=${stages}" -P ${SFC_SOURCE}/cmake/StageIncludes.cmake
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${out_rc} ${rc} PARENT_SCOPE)
  set(${out_text} "${out}${err}" PARENT_SCOPE)
endfunction()

run_check(rc text)
if(NOT rc EQUAL 0)
  file(REMOVE_RECURSE ${copy})
  message(FATAL_ERROR "the unmodified tree already fails the stage check:\n${text}")
endif()

set(victim ${copy}/src/output/results_writer.cpp)
file(READ ${victim} body)
file(WRITE ${victim} "#include \"sfc/app/command.h\"\n${body}")
run_check(rc text)
file(REMOVE_RECURSE ${copy})
if(rc EQUAL 0)
  message(FATAL_ERROR "a planted back edge (output -> app) passed the stage check")
endif()
if(NOT text MATCHES "results_writer.cpp: stage 'output' includes a header of the later stage 'app'")
  message(FATAL_ERROR "the stage check failed, but without naming the planted back edge:\n${text}")
endif()
message(STATUS "stage check: the planted back edge was caught")
