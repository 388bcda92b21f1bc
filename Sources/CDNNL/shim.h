#include <oneapi/dnnl/dnnl.h>
/* libgomp's own API; omp.h lives in GCC's private include folder, so declare the two
   functions MedMAML calls here. oneDNN in Debian is built on OpenMP. */
void omp_set_num_threads(int);
int omp_get_max_threads(void);
