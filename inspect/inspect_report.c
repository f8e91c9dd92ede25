/*
 * inspect_report.c — the list of hits and the counters that the NGINX
 * module and the CLI read.
 */
#include <stdlib.h>
#include <string.h>

#include "inspect_internal.h"

static const char *const kind_names[INSPECT_NKINDS] = {
    [INSPECT_WRPKRU] = "WRPKRU",
    [INSPECT_XRSTOR] = "XRSTOR",
    [INSPECT_XRSTOR64] = "XRSTOR64",
    [INSPECT_XRSTORS] = "XRSTORS",
};

static const char *const class_names[INSPECT_NCLASSES] = {
    [INSPECT_REAL] = "real",
    [INSPECT_SPANNING] = "spanning",
    [INSPECT_IN_OPCODE] = "in-opcode",
    [INSPECT_IN_MODRM_SIB] = "in-modrm-sib",
    [INSPECT_IN_DISP] = "in-displacement",
    [INSPECT_IN_IMM] = "in-immediate",
    [INSPECT_OUTSIDE_CODE] = "outside-code",
};

const char *
inspect_kind_name(enum inspect_kind kind)
{
    return (unsigned) kind < INSPECT_NKINDS ? kind_names[kind] : "?";
}

const char *
inspect_class_name(enum inspect_class cls)
{
    return (unsigned) cls < INSPECT_NCLASSES ? class_names[cls] : "?";
}

void
insp_copy_name(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;                   /* truncated; reports only */
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int
insp_report_add(struct inspect_report *r, const struct inspect_hit *hit)
{
    if (r->nhit == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 32;
        struct inspect_hit *n = realloc(r->hit, ncap * sizeof(*n));
        if (!n)
            return -1;
        r->hit = n;
        r->cap = ncap;
    }
    r->hit[r->nhit++] = *hit;
    r->hits++;
    r->by_class[hit->cls]++;
    r->by_kind[hit->kind]++;
    if (!hit->safe)
        r->unsafe++;
    return 0;
}

void
insp_hit_describe(struct inspect_hit *hit, const struct insp_elf *elf,
                  uint64_t off)
{
    hit->section[0] = hit->symbol[0] = '\0';
    hit->symbol_offset = 0;
    if (!elf)
        return;
    const struct insp_elf_section *s = insp_elf_section_at(elf, off);
    if (s)
        insp_copy_name(hit->section, sizeof(hit->section), s->name);
    const struct insp_elf_symbol *sym = insp_elf_symbol_at(elf, off);
    if (sym) {
        insp_copy_name(hit->symbol, sizeof(hit->symbol), sym->name);
        hit->symbol_offset = off - sym->off;
    }
}

bool
inspect_report_clean(const struct inspect_report *r)
{
    return r->unsafe == 0 && r->uninspected_pages == 0;
}

void
inspect_report_free(struct inspect_report *r)
{
    free(r->hit);
    memset(r, 0, sizeof(*r));
}
