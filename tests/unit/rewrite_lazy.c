/*
 * A helper library for test_rewrite: its one function is called for the
 * first time after the rewrite, through a PLT slot that the program (linked
 * with -z lazy) binds lazily.  ld.so's lazy-binding trampoline saves all
 * argument registers, the vector ones with XSAVE(C), resolves the symbol
 * and restores them with XRSTOR: a rewritten XRSTOR site.  Six integer and
 * eight floating-point arguments make each register count.
 *
 * rewrite_lazy_probe is only ever called in children, each time for the
 * first time, with T opened by a forged signal frame: after the rewrite,
 * the check after ld.so's XRSTOR must end them.
 */
double rewrite_lazy_mix(long a, long b, long c, long d, long e, long f,
                        double x0, double x1, double x2, double x3,
                        double x4, double x5, double x6, double x7);
int rewrite_lazy_probe(void);

int
rewrite_lazy_probe(void)
{
    return 7;
}

double
rewrite_lazy_mix(long a, long b, long c, long d, long e, long f,
                 double x0, double x1, double x2, double x3, double x4,
                 double x5, double x6, double x7)
{
    return (double) (a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f)
         + x0 + 2 * x1 + 3 * x2 + 4 * x3 + 5 * x4 + 6 * x5 + 7 * x6
         + 8 * x7;
}
