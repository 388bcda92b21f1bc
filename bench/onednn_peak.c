// The machine's one-core matrix-product peak through oneDNN's matmul primitive, Float32
// against bfloat16 inputs with Float32 accumulation (what bf16 precision's convolutions run
// on), with the kernel oneDNN chose for each. Built and run by bench/onednn_peak.sh.
#include <dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHECK(call) do { dnnl_status_t s = (call); if (s != dnnl_success) { \
    fprintf(stderr, "%s failed with status %d\n", #call, (int)s); exit(1); } } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// GFLOP/s of an n x n x n product with inputs of type `input` and a Float32 result.
static double peak(dnnl_engine_t engine, dnnl_stream_t stream, dnnl_data_type_t input, int n, int repetitions) {
    dnnl_dims_t dims = {n, n};
    dnnl_memory_desc_t a, b, c;
    CHECK(dnnl_memory_desc_init_by_tag(&a, 2, dims, input, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&b, 2, dims, input, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&c, 2, dims, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t descriptor;
    CHECK(dnnl_matmul_desc_init(&descriptor, &a, &b, NULL, &c));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &descriptor, NULL, engine, NULL));
    const char *kernel = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &kernel);
    dnnl_primitive_t primitive;
    CHECK(dnnl_primitive_create(&primitive, pd));
    dnnl_memory_t ma, mb, mc;
    CHECK(dnnl_memory_create(&ma, &a, engine, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&mb, &b, engine, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&mc, &c, engine, DNNL_MEMORY_ALLOCATE));
    dnnl_exec_arg_t arguments[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
    CHECK(dnnl_primitive_execute(primitive, stream, 3, arguments));  // warm-up
    double start = now();
    for (int i = 0; i < repetitions; i++) CHECK(dnnl_primitive_execute(primitive, stream, 3, arguments));
    CHECK(dnnl_stream_wait(stream));
    double gflops = 2.0 * n * n * n * repetitions / (now() - start) / 1e9;
    printf("%-5s %-28s %7.1f GFLOP/s\n", input == dnnl_f32 ? "f32" : "bf16", kernel, gflops);
    dnnl_memory_destroy(ma); dnnl_memory_destroy(mb); dnnl_memory_destroy(mc);
    dnnl_primitive_destroy(primitive);
    dnnl_primitive_desc_destroy(pd);
    return gflops;
}

int main(void) {
    omp_set_num_threads(1);
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    for (int round = 0; round < 3; round++) {
        double single = peak(engine, stream, dnnl_f32, 1024, 10);
        double half = peak(engine, stream, dnnl_bf16, 1024, 10);
        printf("bf16_over_f32 %.2f\n", half / single);
    }
    return 0;
}
