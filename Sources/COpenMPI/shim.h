// OpenMPI's C API. Its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are macros over
// addresses of library globals, which Swift does not import; these inline functions return them.
#include <mpi.h>

static inline MPI_Comm dvt_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype dvt_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype dvt_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Op dvt_mpi_sum(void) { return MPI_SUM; }
static inline void *dvt_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int dvt_mpi_success(void) { return MPI_SUCCESS; }
