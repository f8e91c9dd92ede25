/*
 * inspect_rewrite.c — ERIM's dynamic rewriting: inspect_rewrite_process.
 *
 *   1. scan the process; for each unsafe hit of class real, plan: choose
 *      the span (inspect_span.c) and build its trampoline in a read-write
 *      page near it (inspect_tramp.c).  Nothing runnable changes yet.
 *   2. commit: trampoline pages become r-x (data pages r--), their
 *      checked copies are registered as rewritten sites, and each span is
 *      overwritten with its jump through /proc/self/mem (inspect_patch.c).
 *   3. scan again, into the caller's report: 0 only if it is clean.
 *
 * Hits of the other classes (spanning, inside an instruction, outside
 * code) are not rewritten: they need ERIM's static rules (replace the
 * holding instruction by an equivalent sequence, move code), which are
 * not here yet.  They stay unsafe, so the final scan is not clean and the
 * caller fails closed.  The extension point is plan_hook below: it sees
 * each hit with its class, fields and holding instruction, and the region
 * around it.
 *
 * XRSTORS faults (#GP) at CPL 3, so it is no gadget in U; a real one is
 * still rewritten like XRSTOR, so that no rule depends on that CPU fact
 * and the semantics stay the same (it faults in the trampoline instead).
 */
#include <cpuid.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inspect_rewrite.h"

static inspect_log_fn log_fn;
static void *log_ctx;

/* every site rewritten in this process */
static struct inspect_rewrite *done;
static size_t ndone, capdone;

void
inspect_set_log(inspect_log_fn fn, void *ctx)
{
    log_fn = fn;
    log_ctx = ctx;
}

void
insp_log(const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (log_fn)
        log_fn(log_ctx, line);
    else
        fprintf(stderr, "%s\n", line);
}

const struct inspect_rewrite *
inspect_rewrites(size_t *n)
{
    *n = ndone;
    return done;
}

/* "WRPKRU at 0x7f..352 (libc.so.6+0x109352 pkey_set+0x32)" */
static void
describe(const struct inspect_rewrite *w, char *buf, size_t size)
{
    const char *slash = strrchr(w->object, '/');
    const char *base = slash ? slash + 1 : w->object;
    int n = snprintf(buf, size, "%s at %#llx (%s", inspect_kind_name(w->kind),
                     (unsigned long long) w->site, base);
    if (n > 0 && (size_t) n < size && w->file_offset != INSPECT_NONE)
        n += snprintf(buf + n, size - (size_t) n, "+%#llx",
                      (unsigned long long) w->file_offset);
    if (n > 0 && (size_t) n < size && w->symbol[0])
        n += snprintf(buf + n, size - (size_t) n, " %s+%#llx", w->symbol,
                      (unsigned long long) w->symbol_offset);
    if (n > 0 && (size_t) n < size)
        snprintf(buf + n, size - (size_t) n, ")");
}

void
insp_rewriter_init(struct insp_rewriter *w, int pkey)
{
    memset(w, 0, sizeof(*w));
    insp_tramp_pool_init(&w->pool, pkey);
}

void
insp_rewriter_free(struct insp_rewriter *w)
{
    insp_tramp_pool_free(&w->pool);
    free(w->plan);
    w->plan = NULL;
    w->nplan = w->capplan = 0;
}

int
insp_rewriter_plan(struct insp_rewriter *w, const struct insp_region *r,
                   uint64_t site, const struct inspect_rewrite *info)
{
    if (w->nplan) {
        const struct insp_span *last = &w->plan[w->nplan - 1].span;
        if (site >= last->site && site < last->site + last->len)
            return 1;
    }
    if (w->nplan == w->capplan) {
        size_t ncap = w->capplan ? w->capplan * 2 : 8;
        struct insp_plan *np = realloc(w->plan, ncap * sizeof(*np));
        if (!np)
            return -2;
        w->plan = np;
        w->capplan = ncap;
    }
    struct insp_plan *pl = &w->plan[w->nplan];
    pl->info = *info;
    pl->info.site = site;
    char what[512], why[256];
    describe(&pl->info, what, sizeof(what));
    if (insp_span_plan(r, site, &pl->span, why, sizeof(why)) != 0
        || insp_tramp_build(&w->pool, &pl->span, what, &pl->tramp, why,
                            sizeof(why)) != 0) {
        insp_log("mpk-inspect: cannot rewrite %s: %s", what, why);
        w->refused++;
        return -1;
    }
    pl->info.span = pl->span.len;
    pl->info.trampoline = pl->tramp.addr;
    pl->info.trampoline_len = pl->tramp.len;
    pl->info.checked_site = pl->tramp.sites[0];
    w->nplan++;
    return 0;
}

static int
record(const struct inspect_rewrite *info)
{
    if (ndone == capdone) {
        size_t ncap = capdone ? capdone * 2 : 8;
        struct inspect_rewrite *n = realloc(done, ncap * sizeof(*n));
        if (!n)
            return -1;
        done = n;
        capdone = ncap;
    }
    done[ndone++] = *info;
    return 0;
}

int
insp_rewriter_commit(struct insp_rewriter *w)
{
    /* trampolines runnable (and never writable again) before any jump to
     * them exists */
    if (insp_tramp_seal(&w->pool) != 0)
        return -1;
    for (size_t i = 0; i < w->nplan; i++) {
        const struct insp_tramp *t = &w->plan[i].tramp;
        for (size_t k = 0; k < t->nsites; k++)
            if (insp_rewritten_add(t->sites[k], t->addr,
                                   (const uint8_t *) (uintptr_t) t->addr,
                                   t->len) != 0) {
                errno = ENOMEM;
                return -1;
            }
    }
    int n = 0;
    for (size_t i = 0; i < w->nplan; i++) {
        const struct insp_plan *pl = &w->plan[i];
        char what[512];
        describe(&pl->info, what, sizeof(what));
        if (insp_text_write(pl->span.site, pl->tramp.patch, pl->span.len)
            != 0) {
            int saved = errno;
            insp_log("mpk-inspect: cannot write the jump at %s: %s", what,
                     strerror(saved));
            errno = saved;
            return -1;
        }
        if (record(&pl->info) != 0) {
            errno = ENOMEM;
            return -1;
        }
        insp_log("mpk-inspect: rewrote %s: %u bytes -> trampoline %#llx "
                 "(%u bytes, checked copy at %#llx)", what, pl->span.len,
                 (unsigned long long) pl->tramp.addr, pl->tramp.len,
                 (unsigned long long) pl->tramp.sites[0]);
        n++;
    }
    return n;
}

/* The scan's hook: plan each unsafe real site.  Other classes are where
 * ERIM's static rules would go. */
static int
plan_hook(void *ctx, struct inspect_hit *hit, const struct insp_region *r)
{
    struct insp_rewriter *w = ctx;
    if (hit->safe || hit->cls != INSPECT_REAL)
        return 0;
    struct inspect_rewrite info = {
        .kind = hit->kind,
        .file_offset = hit->file_offset == INSPECT_NONE
                     ? INSPECT_NONE : hit->file_offset - hit->insn_back,
        .symbol_offset = hit->symbol_offset - hit->insn_back,
    };
    insp_copy_name(info.object, sizeof(info.object), hit->object);
    insp_copy_name(info.symbol, sizeof(info.symbol), hit->symbol);
    return insp_rewriter_plan(w, r, hit->addr - hit->insn_back, &info) == -2
         ? -1 : 0;
}

static bool
cpu_has_ospke(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 4));
}

static void
log_unsafe(const struct inspect_report *r)
{
    for (size_t i = 0; i < r->nhit; i++) {
        const struct inspect_hit *h = &r->hit[i];
        if (h->safe)
            continue;
        insp_log("mpk-inspect: unsafe %s (%s) at %#llx in %s%s%s: %s",
                 inspect_kind_name(h->kind), inspect_class_name(h->cls),
                 (unsigned long long) h->addr, h->object,
                 h->symbol[0] ? " " : "", h->symbol,
                 h->cls == INSPECT_REAL ? "not rewritten"
                 : "only real instructions are rewritten");
    }
    if (r->uninspected_pages)
        insp_log("mpk-inspect: %zu executable pages could not be read",
                 r->uninspected_pages);
}

int
inspect_rewrite_process(int pkey, struct inspect_report *report)
{
    if (pkey < 1 || pkey > 15) {
        errno = EINVAL;
        return -1;
    }
    if (!cpu_has_ospke()) {
        errno = ENOTSUP;                /* the check's RDPKRU would #UD */
        return -1;
    }
    struct insp_rewriter w;
    insp_rewriter_init(&w, pkey);
    struct inspect_report first = { 0 };
    int rc = insp_process_scan(&first, plan_hook, &w);
    inspect_report_free(&first);
    int n = rc == 0 ? insp_rewriter_commit(&w) : -1;
    int saved = errno;
    insp_rewriter_free(&w);
    if (n < 0) {
        errno = saved;
        return -1;
    }
    if (inspect_process(report) != 0)
        return -1;
    report->rewritten += (size_t) n;
    if (!inspect_report_clean(report)) {
        log_unsafe(report);
        errno = EPERM;
        return -1;
    }
    return 0;
}
