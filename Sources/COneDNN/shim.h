// oneDNN's C API (Debian: libdnnl-dev, oneDNN 2.6, OpenMP threading runtime:
// DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP in dnnl_config.h).
#include <oneapi/dnnl/dnnl.h>
