// LAPACKE C interface (Debian: liblapacke-dev), used for symmetric eigendecompositions (PCA).
#include <lapacke.h>
