/*
 * mpk_inspect_bench.h — `mpk-inspect --bench FILE...`: the inspector's
 * speed in µs per 4 KiB page (figures only, nothing asserted).
 */
#ifndef MPKTLS_MPK_INSPECT_BENCH_H
#define MPKTLS_MPK_INSPECT_BENCH_H

int mpk_inspect_bench(int nfiles, char **files);

#endif
