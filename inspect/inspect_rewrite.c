/*
 * inspect_rewrite.c — ERIM's dynamic rewriting: inspect_rewrite_process.
 *
 *   1. scan the process; for each unsafe hit, plan: the instruction to
 *      rewrite (a real PKRU write, or the instruction the sequence lies in
 *      or starts in), its span (inspect_span.c), and the trampoline in a
 *      read-write page near it (inspect_tramp.c): each PKRU write copied
 *      and checked, each other instruction moved or replaced by an
 *      equivalent one without the bytes (inspect_xform.c), NOPs between
 *      instructions whose bytes would meet into a sequence.  Nothing
 *      runnable changes yet.
 *   2. commit: trampoline pages become r-x (data pages r--), their
 *      checked copies are registered as rewritten sites, and each span is
 *      overwritten with its jump through /proc/self/mem (inspect_patch.c).
 *   3. scan again, into the caller's report: 0 only if it is clean.
 *
 * A site that no rule rewrites safely (a call or PUSH $imm whose bytes
 * hold the sequence, data in code, a span a branch lands in, ...) is left
 * as it is and logged: the final scan is not clean and the caller fails
 * closed.  The same planning serves the static rewriter
 * (inspect_static.c), through insp_rewriter_plan_hit.
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

/* "WRPKRU at 0x7f..352 (libc.so.6+0x109352 pkey_set+0x32)", with the
 * class when it is not a real instruction */
void
insp_rewrite_describe(const struct inspect_rewrite *w, char *buf,
                      size_t size)
{
    const char *slash = strrchr(w->object, '/');
    const char *base = slash ? slash + 1 : w->object;
    int n = snprintf(buf, size, "%s", inspect_kind_name(w->kind));
    if (n > 0 && (size_t) n < size && w->cls != INSPECT_REAL)
        n += snprintf(buf + n, size - (size_t) n, " (%s)",
                      inspect_class_name(w->cls));
    if (n > 0 && (size_t) n < size)
        n += snprintf(buf + n, size - (size_t) n, " at %#llx (%s",
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
insp_rules_string(uint32_t rules, char *buf, size_t size)
{
    static const char *const names[] = {
        "checked copy", "relocated", "NOP inserted", "register substituted",
        "immediate split", "displacement moved into the base",
        "immediate through a saved register",
        "address through a saved register",
    };
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned k = 0; k < sizeof(names) / sizeof(*names); k++)
        if (rules & (1u << k) && n < size) {
            int m = snprintf(buf + n, size - n, "%s%s", n ? ", " : "",
                             names[k]);
            if (m > 0)
                n += (size_t) m;
        }
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
    uint64_t floor = 0;
    if (w->nplan) {
        const struct insp_span *last = &w->plan[w->nplan - 1].span;
        if (site >= last->site && site < last->site + last->len)
            return 1;
        floor = last->site + last->len;
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
    insp_rewrite_describe(&pl->info, what, sizeof(what));
    if (insp_span_plan(r, site, floor, &pl->span, why, sizeof(why)) != 0
        || insp_tramp_build(&w->pool, &pl->span, what, &pl->tramp, why,
                            sizeof(why)) != 0) {
        insp_log("mpk-inspect: cannot rewrite %s: %s", what, why);
        w->refused++;
        return -1;
    }
    pl->info.span = pl->span.len;
    pl->info.span_start = pl->span.site;
    pl->info.trampoline = pl->tramp.addr;
    pl->info.trampoline_len = pl->tramp.len;
    pl->info.checked_site = pl->tramp.nsites ? pl->tramp.sites[0] : 0;
    pl->info.rules = pl->tramp.rules;
    w->nplan++;
    return 0;
}

int
insp_rewriter_plan_hit(struct insp_rewriter *w, const struct insp_region *r,
                       const struct inspect_hit *hit)
{
    if (hit->safe)
        return 0;
    struct inspect_rewrite info = {
        .kind = hit->kind,
        .cls = hit->cls,
        .file_offset = hit->file_offset,
        .symbol_offset = hit->symbol_offset,
    };
    insp_copy_name(info.object, sizeof(info.object), hit->object);
    insp_copy_name(info.symbol, sizeof(info.symbol), hit->symbol);
    /* the instruction to rewrite: the one that holds the 0F byte; for a
     * sequence whose 0F is in no instruction (data, padding, bytes cut off
     * by a function start), the first instruction that holds one of its
     * other bytes (rewriting it breaks the sequence) */
    uint64_t insn = hit->addr - hit->insn_back;
    if (hit->cls == INSPECT_OUTSIDE_CODE
        && insp_insn_holding(r, hit->addr + 1, hit->addr + 3, &insn) != 0) {
        char what[512];
        info.site = hit->addr;
        insp_rewrite_describe(&info, what, sizeof(what));
        insp_log("mpk-inspect: cannot rewrite %s: no instruction holds its "
                 "bytes", what);
        w->refused++;
        return -1;
    }
    uint64_t back = hit->addr - insn;       /* may wrap: offsets subtract */
    if (info.file_offset != INSPECT_NONE)
        info.file_offset -= back;
    if (back <= info.symbol_offset)
        info.symbol_offset -= back;
    else
        info.symbol[0] = '\0';     /* the instruction starts before it */
    return insp_rewriter_plan(w, r, insn, &info);
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
        insp_rewrite_describe(&pl->info, what, sizeof(what));
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
        char rules[256], from[64] = "";
        insp_rules_string(pl->tramp.rules & ~INSPECT_RULE_CHECK, rules,
                          sizeof(rules));
        if (pl->span.site != pl->info.site)
            snprintf(from, sizeof(from), " from %#llx",
                     (unsigned long long) pl->span.site);
        if (pl->tramp.nsites)
            insp_log("mpk-inspect: rewrote %s: %u bytes%s -> trampoline "
                     "%#llx (%u bytes, checked copy at %#llx%s%s)", what,
                     pl->span.len, from, (unsigned long long) pl->tramp.addr,
                     pl->tramp.len, (unsigned long long) pl->tramp.sites[0],
                     rules[0] ? "; " : "", rules);
        else
            insp_log("mpk-inspect: rewrote %s: %u bytes%s -> trampoline "
                     "%#llx (%u bytes; %s)", what, pl->span.len, from,
                     (unsigned long long) pl->tramp.addr, pl->tramp.len,
                     rules);
        n++;
    }
    return n;
}

/* The scan's hook: plan each unsafe site, whatever its class. */
static int
plan_hook(void *ctx, struct inspect_hit *hit, const struct insp_region *r)
{
    return insp_rewriter_plan_hit(ctx, r, hit) == -2 ? -1 : 0;
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
                 "not rewritten");
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
    inspect_set_pkey(pkey);
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
