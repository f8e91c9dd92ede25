/*
 * inspect_elf.c — the little of ELF64 the inspector needs: section headers
 * (where code is), PT_LOAD headers (what is mapped, at which address) and
 * one symbol table (anchors for decoding, names for reports).
 *
 * The input is untrusted (any file given to mpk-inspect), so every offset
 * and count is checked against the image before use, headers are copied
 * out with memcpy (no unaligned access), and names are used only if they
 * end inside their string table.  Everything is kept in file offsets, so
 * that files and mappings (address = start + offset - mapping offset) use
 * the same code.
 */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "inspect_internal.h"

static bool
in_image(const struct insp_elf *e, uint64_t off, uint64_t len)
{
    return off <= e->size && len <= e->size - off;
}

/* A NUL-terminated string at off inside table [tab, tab + tabsize). */
static const char *
string_at(const struct insp_elf *e, uint64_t tab, uint64_t tabsize,
          uint64_t off)
{
    if (!in_image(e, tab, tabsize) || off >= tabsize)
        return "";
    const char *s = (const char *) e->image + tab + off;
    if (!memchr(s, '\0', tabsize - off))
        return "";
    return s;
}

static int
read_segments(struct insp_elf *e, const Elf64_Ehdr *eh)
{
    if (eh->e_phnum == 0)
        return 0;
    if (eh->e_phentsize != sizeof(Elf64_Phdr)
        || !in_image(e, eh->e_phoff, (uint64_t) eh->e_phnum
                                     * sizeof(Elf64_Phdr)))
        return -1;
    e->seg = calloc(eh->e_phnum, sizeof(*e->seg));
    if (!e->seg)
        return -1;
    for (size_t i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, e->image + eh->e_phoff + i * sizeof(ph), sizeof(ph));
        if (ph.p_type != PT_LOAD)
            continue;
        e->seg[e->nseg++] = (struct insp_elf_segment) {
            .type = ph.p_type, .flags = ph.p_flags, .offset = ph.p_offset,
            .vaddr = ph.p_vaddr, .filesz = ph.p_filesz,
        };
    }
    return 0;
}

static int
read_sections(struct insp_elf *e, const Elf64_Ehdr *eh)
{
    if (eh->e_shoff == 0)
        return 0;                       /* no section headers (sstrip) */
    if (eh->e_shentsize != sizeof(Elf64_Shdr)
        || !in_image(e, eh->e_shoff, sizeof(Elf64_Shdr)))
        return -1;
    Elf64_Shdr first;
    memcpy(&first, e->image + eh->e_shoff, sizeof(first));
    /* extended numbering: the real count and string index live in sh[0] */
    uint64_t n = eh->e_shnum ? eh->e_shnum : first.sh_size;
    uint64_t strndx = eh->e_shstrndx == SHN_XINDEX ? first.sh_link
                                                   : eh->e_shstrndx;
    if (n == 0 || n > e->size / sizeof(Elf64_Shdr)
        || !in_image(e, eh->e_shoff, n * sizeof(Elf64_Shdr)))
        return -1;
    e->sec = calloc(n, sizeof(*e->sec));
    if (!e->sec)
        return -1;
    Elf64_Shdr strsh = { 0 };
    if (strndx < n)
        memcpy(&strsh, e->image + eh->e_shoff + strndx * sizeof(strsh),
               sizeof(strsh));
    if (strsh.sh_type != SHT_STRTAB)
        strsh.sh_size = 0;
    for (size_t i = 0; i < n; i++) {
        Elf64_Shdr sh;
        memcpy(&sh, e->image + eh->e_shoff + i * sizeof(sh), sizeof(sh));
        struct insp_elf_section *s = &e->sec[i];
        *s = (struct insp_elf_section) {
            .name = string_at(e, strsh.sh_offset, strsh.sh_size, sh.sh_name),
            .type = sh.sh_type, .link = sh.sh_link, .flags = sh.sh_flags,
            .addr = sh.sh_addr, .offset = sh.sh_offset, .size = sh.sh_size,
        };
        /* a section whose data lies outside the file has none */
        if (s->type != SHT_NOBITS && !in_image(e, s->offset, s->size))
            s->type = SHT_NOBITS;
    }
    e->nsec = n;
    return 0;
}

static int
sym_rank(uint8_t type)
{
    return type == STT_FUNC || type == STT_GNU_IFUNC ? 0
         : type == STT_NOTYPE ? 1 : 2;
}

static int
cmp_sym(const void *a, const void *b)
{
    const struct insp_elf_symbol *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    if (sym_rank(x->type) != sym_rank(y->type))
        return sym_rank(x->type) - sym_rank(y->type);
    /* same place and rank: keep the table's order (names are in it) */
    return x->name < y->name ? -1 : x->name > y->name;
}

/* By offset, functions first among symbols at one offset, then in table
 * order: packed into one 64-bit key each (offset, rank, index) and radix
 * sorted; qsort only for files too large to pack. */
static int
sort_symbols(struct insp_elf *e)
{
    const unsigned index_bits = 22, rank_bits = 2;
    uint64_t *key = malloc((e->nsym ? e->nsym : 1) * sizeof(*key));
    struct insp_elf_symbol *sorted = malloc((e->nsym ? e->nsym : 1)
                                            * sizeof(*sorted));
    bool packable = e->nsym < (1u << index_bits)
                 && e->size < ((uint64_t) 1 << (64 - index_bits - rank_bits));
    if (!key || !sorted || !packable) {
        free(key);
        free(sorted);
        if (!packable)
            qsort(e->sym, e->nsym, sizeof(*e->sym), cmp_sym);
        return packable ? -1 : 0;
    }
    for (size_t i = 0; i < e->nsym; i++)
        key[i] = e->sym[i].off << (index_bits + rank_bits)
               | (uint64_t) sym_rank(e->sym[i].type) << index_bits | i;
    int rc = insp_sort_u64(key, e->nsym);
    if (rc == 0) {
        for (size_t i = 0; i < e->nsym; i++)
            sorted[i] = e->sym[key[i] & ((1u << index_bits) - 1)];
        free(e->sym);
        e->sym = sorted;
        sorted = NULL;
    }
    free(key);
    free(sorted);
    return rc;
}

/* .symtab if there is one (it holds the local symbols too), else .dynsym. */
int
insp_elf_load_symbols(struct insp_elf *e)
{
    if (e->symbols_loaded)
        return 0;
    size_t tab = e->nsec;
    for (size_t i = 0; i < e->nsec; i++)
        if (e->sec[i].type == SHT_SYMTAB
            || (e->sec[i].type == SHT_DYNSYM && tab == e->nsec))
            tab = i;
    if (tab == e->nsec || e->sec[tab].link >= e->nsec) {
        e->symbols_loaded = true;
        return 0;
    }
    const struct insp_elf_section *symtab = &e->sec[tab];
    const struct insp_elf_section *strtab = &e->sec[symtab->link];
    size_t n = symtab->size / sizeof(Elf64_Sym);
    e->sym = calloc(n ? n : 1, sizeof(*e->sym));
    if (!e->sym)
        return -1;
    for (size_t i = 0; i < n; i++) {
        Elf64_Sym st;
        memcpy(&st, e->image + symtab->offset + i * sizeof(st), sizeof(st));
        uint8_t type = ELF64_ST_TYPE(st.st_info);
        if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE
            && type != STT_OBJECT)
            continue;
        if (st.st_shndx == SHN_UNDEF || st.st_shndx >= e->nsec
            || e->sec[st.st_shndx].type == SHT_NOBITS)
            continue;
        const struct insp_elf_section *s = &e->sec[st.st_shndx];
        const char *name = strtab->type == SHT_STRTAB
            ? string_at(e, strtab->offset, strtab->size, st.st_name) : "";
        if (!*name)
            continue;
        /* to a file offset: relocatable objects count from the section */
        if (e->type != ET_REL && st.st_value < s->addr)
            continue;
        uint64_t rel = e->type == ET_REL ? st.st_value
                                         : st.st_value - s->addr;
        if (rel > s->size)
            continue;
        e->sym[e->nsym++] = (struct insp_elf_symbol) {
            .off = s->offset + rel, .size = st.st_size, .name = name,
            .shndx = st.st_shndx, .type = type,
        };
    }
    if (sort_symbols(e) != 0)
        return -1;
    e->symbols_loaded = true;
    return 0;
}

int
insp_elf_parse(struct insp_elf *e, const uint8_t *image, size_t size)
{
    memset(e, 0, sizeof(*e));
    e->image = image;
    e->size = size;
    Elf64_Ehdr eh;
    if (size < sizeof(eh))
        return -1;
    memcpy(&eh, image, sizeof(eh));
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0
        || eh.e_ident[EI_CLASS] != ELFCLASS64
        || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
        return -1;
    e->type = eh.e_type;

    int rc = read_segments(e, &eh);
    if (rc == 0)
        rc = read_sections(e, &eh);
    if (rc != 0)
        insp_elf_free(e);
    return rc;
}

void
insp_elf_free(struct insp_elf *e)
{
    free(e->sec);
    free(e->seg);
    free(e->sym);
    e->sec = NULL;
    e->seg = NULL;
    e->sym = NULL;
    e->nsec = e->nseg = e->nsym = 0;
    e->symbols_loaded = false;
}

const struct insp_elf_section *
insp_elf_section_at(const struct insp_elf *e, uint64_t off)
{
    const struct insp_elf_section *best = NULL;
    for (size_t i = 0; i < e->nsec; i++) {
        const struct insp_elf_section *s = &e->sec[i];
        if (s->type == SHT_NOBITS || s->type == SHT_NULL
            || off < s->offset || off - s->offset >= s->size)
            continue;
        if (!best || (insp_elf_is_code(s) && !insp_elf_is_code(best)))
            best = s;
    }
    return best;
}

const struct insp_elf_symbol *
insp_elf_symbol_at(const struct insp_elf *e, uint64_t off)
{
    /* the last symbol at or before off */
    size_t lo = 0, hi = e->nsym;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->sym[mid].off <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    /* all symbols at that same offset: the first sorts best */
    size_t i = lo - 1;
    while (i > 0 && e->sym[i - 1].off == e->sym[lo - 1].off)
        i--;
    const struct insp_elf_symbol *s = &e->sym[i];
    const struct insp_elf_section *sec = insp_elf_section_at(e, off);
    if (!sec || &e->sec[s->shndx] != sec)
        return NULL;
    if (s->size == 0 || off - s->off < s->size)
        return s;
    /* a stripped file: look back a little for a symbol that holds off */
    for (size_t k = i, steps = 0; k > 0 && steps < 16; k--, steps++) {
        const struct insp_elf_symbol *t = &e->sym[k - 1];
        if (t->size && off - t->off < t->size && &e->sec[t->shndx] == sec)
            return t;
    }
    return NULL;
}

const struct insp_elf_symbol *
insp_elf_symbol_named(const struct insp_elf *e, const char *name)
{
    for (size_t i = 0; i < e->nsym; i++)
        if (strcmp(e->sym[i].name, name) == 0)
            return &e->sym[i];
    return NULL;
}

uint64_t
insp_elf_vaddr(const struct insp_elf *e, uint64_t off)
{
    /* within a segment's file bytes, else within its page-rounded
     * mapping (the kernel maps whole pages) */
    for (int rounded = 0; rounded < 2; rounded++) {
        for (size_t i = 0; i < e->nseg; i++) {
            const struct insp_elf_segment *s = &e->seg[i];
            uint64_t lo = s->offset, hi = s->offset + s->filesz;
            if (rounded) {
                lo &= ~(uint64_t) (INSPECT_PAGE_SIZE - 1);
                hi = (hi + INSPECT_PAGE_SIZE - 1)
                   & ~(uint64_t) (INSPECT_PAGE_SIZE - 1);
            }
            if (off >= lo && off < hi && s->vaddr >= s->offset - lo)
                return s->vaddr + (off - s->offset);
        }
    }
    return INSPECT_NONE;
}
