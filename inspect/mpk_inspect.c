/*
 * mpk-inspect — report WRPKRU/XRSTOR byte sequences in ELF files or in this
 * process (see inspect/README.md).
 *
 *   mpk-inspect [--json] [--pkey N] [--gate [OBJECT:]SYMBOL]...
 *               [--no-default-gates] FILE...
 *   mpk-inspect [--json] [--pkey N] [--gate ...] --self
 *   mpk-inspect [--json] [--pkey N] [--gate ...] --rewrite OUT FILE
 *   mpk-inspect --bench FILE...
 *
 * The keystore's two WRPKRU labels are gate sites by default, in any file;
 * --gate adds sites, --no-default-gates drops the defaults.  A PKRU write
 * followed by the rewriter's check for key N (default 1; 0: none) is safe
 * too.  --rewrite writes FILE with every unsafe site rewritten (ERIM's
 * static rewriting, checks for key N) to OUT, then reports OUT.  Exit
 * status: 0 nothing unsafe, 1 unsafe hits (or executable memory that could
 * not be read, or a site --rewrite could not rewrite: OUT is then not
 * written), 2 usage errors or files that could not be inspected.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "mpk_inspect_bench.h"

static const char *const field_names[] = {
    "prefix", "opcode", "modrm", "sib", "displacement", "immediate",
};

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: mpk-inspect [--json] [--pkey N] [--gate [OBJECT:]SYMBOL]... "
        "[--no-default-gates] FILE...\n"
        "       mpk-inspect [--json] [--pkey N] [--gate ...] --self\n"
        "       mpk-inspect [--json] [--pkey N] [--gate ...] --rewrite OUT "
        "FILE\n"
        "       mpk-inspect --bench FILE...\n"
        "Reports every WRPKRU/XRSTOR/XRSTOR64/XRSTORS byte sequence in the "
        "executable\nsegments of ELF files (or of this process with "
        "--self): where, what kind,\nhow it lies in the decoded "
        "instructions, and whether it is safe (a registered\ngate, or "
        "followed by the check for key N, default 1).  --rewrite writes "
        "FILE\nwith every unsafe site rewritten (ERIM's rules) to OUT, and "
        "reports OUT.\n");
}

/* ---- text --------------------------------------------------------------- */

static void
print_fields(FILE *f, uint8_t fields)
{
    const char *sep = "";
    for (unsigned k = 0; k < sizeof(field_names) / sizeof(*field_names); k++)
        if (fields & (1u << k)) {
            fprintf(f, "%s%s", sep, field_names[k]);
            sep = ",";
        }
    if (!*sep)
        fputc('-', f);
}

static void
print_hit_text(const struct inspect_hit *h, bool process)
{
    if (process)
        printf("%s: addr=0x%" PRIx64, h->object, h->addr);
    else
        printf("%s:", h->object);
    if (h->file_offset != INSPECT_NONE)
        printf(" offset=0x%" PRIx64, h->file_offset);
    if (!process && h->addr != INSPECT_NONE)
        printf(" vaddr=0x%" PRIx64, h->addr);
    printf(" section=%s", h->section[0] ? h->section : "-");
    if (h->symbol[0])
        printf(" symbol=%s+0x%" PRIx64, h->symbol, h->symbol_offset);
    else
        printf(" symbol=-");
    printf(" kind=%s class=%s fields=", inspect_kind_name(h->kind),
           inspect_class_name(h->cls));
    print_fields(stdout, h->fields);
    if (h->insn_len)
        printf(" insn=-%u+%u", h->insn_back, h->insn_len);
    printf(" %s\n", h->safe ? "safe" : "unsafe");
}

static void
print_summary_text(const char *name, const struct inspect_report *r)
{
    printf("%s: mappings=%zu pages=%zu hits=%zu", name, r->mappings,
           r->pages, r->hits);
    for (int c = 0; c < INSPECT_NCLASSES; c++)
        printf(" %s=%zu", inspect_class_name((enum inspect_class) c),
               r->by_class[c]);
    printf(" unsafe=%zu", r->unsafe);
    if (r->linear_mappings)
        printf(" linear_mappings=%zu", r->linear_mappings);
    if (r->uninspected_pages)
        printf(" uninspected_pages=%zu", r->uninspected_pages);
    printf("\n");
}

/* ---- JSON --------------------------------------------------------------- */

static void
json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);       /* bytes, not UTF-8: keep ASCII */
        else
            putchar(c);
    }
    putchar('"');
}

static void
json_u64(uint64_t v)
{
    if (v == INSPECT_NONE)
        printf("null");
    else
        printf("%" PRIu64, v);
}

static void
print_hit_json(const struct inspect_hit *h)
{
    printf("{\"addr\": ");
    json_u64(h->addr);
    printf(", \"offset\": ");
    json_u64(h->file_offset);
    printf(", \"object\": ");
    json_string(h->object);
    printf(", \"section\": ");
    json_string(h->section);
    printf(", \"symbol\": ");
    json_string(h->symbol);
    printf(", \"symbol_offset\": %" PRIu64 ", \"kind\": \"%s\", "
           "\"class\": \"%s\", \"fields\": [", h->symbol_offset,
           inspect_kind_name(h->kind), inspect_class_name(h->cls));
    const char *sep = "";
    for (unsigned k = 0; k < sizeof(field_names) / sizeof(*field_names); k++)
        if (h->fields & (1u << k)) {
            printf("%s\"%s\"", sep, field_names[k]);
            sep = ", ";
        }
    printf("], \"insn_back\": %u, \"insn_len\": %u, \"safe\": %s}",
           h->insn_back, h->insn_len, h->safe ? "true" : "false");
}

static void
print_result_json(const char *name, const struct inspect_report *r,
                  const char *error)
{
    printf("{\"object\": ");
    json_string(name);
    if (error) {
        printf(", \"error\": ");
        json_string(error);
        printf("}");
        return;
    }
    printf(", \"mappings\": %zu, \"pages\": %zu, \"uninspected_pages\": %zu,"
           " \"linear_mappings\": %zu, \"unsafe\": %zu, \"counts\": {",
           r->mappings, r->pages, r->uninspected_pages, r->linear_mappings,
           r->unsafe);
    for (int c = 0; c < INSPECT_NCLASSES; c++)
        printf("%s\"%s\": %zu", c ? ", " : "",
               inspect_class_name((enum inspect_class) c), r->by_class[c]);
    printf("}, \"kinds\": {");
    for (int k = 0; k < INSPECT_NKINDS; k++)
        printf("%s\"%s\": %zu", k ? ", " : "",
               inspect_kind_name((enum inspect_kind) k), r->by_kind[k]);
    printf("}, \"hits\": [");
    for (size_t i = 0; i < r->nhit; i++) {
        printf(i ? ",\n  " : "\n  ");
        print_hit_json(&r->hit[i]);
    }
    printf("]}");
}

/* ---- main --------------------------------------------------------------- */

static int
add_gate(const char *spec)
{
    const char *colon = strchr(spec, ':');
    if (!colon)
        return inspect_gate_add_symbol(NULL, spec);
    char object[128];
    size_t n = (size_t) (colon - spec);
    if (n == 0 || n >= sizeof(object))
        return -1;
    memcpy(object, spec, n);
    object[n] = '\0';
    return inspect_gate_add_symbol(object, colon + 1);
}

/* One result: 0 clean, 1 unsafe, 2 error. */
static int
report_one(const char *name, struct inspect_report *r, int rc, bool json,
           bool process, bool first)
{
    const char *error = rc != 0 ? strerror(errno) : NULL;
    if (json) {
        printf(first ? "\n" : ",\n");
        print_result_json(name, r, error);
    } else if (error) {
        fprintf(stderr, "mpk-inspect: %s: %s\n", name, error);
    } else {
        for (size_t i = 0; i < r->nhit; i++)
            print_hit_text(&r->hit[i], process);
        print_summary_text(name, r);
    }
    return error ? 2 : inspect_report_clean(r) ? 0 : 1;
}

/* --rewrite OUT FILE: 0 OUT written and clean, 1 not rewritten, 2 error */
static int
rewrite_one(const char *out, int nfiles, char **files, int pkey, bool json,
            bool other_mode)
{
    if (nfiles != 1 || other_mode || pkey == 0) {
        if (pkey == 0)
            fprintf(stderr, "mpk-inspect: --rewrite needs --pkey 1..15\n");
        usage(stderr);
        return 2;
    }
    struct inspect_report r = { 0 };
    int rc = inspect_rewrite_file(files[0], out, pkey, &r);
    int err = errno;
    int status;
    if (rc != 0 && err == EPERM) {
        fprintf(stderr, "mpk-inspect: %s: not rewritten: a site could not "
                "be rewritten safely\n", files[0]);
        status = 1;
    } else if (rc != 0 && r.nhit == 0) {
        fprintf(stderr, "mpk-inspect: %s: %s\n", files[0], strerror(err));
        status = 2;
    } else {
        if (json)
            printf("{\"mode\": \"rewrite\", \"rewritten\": %zu, "
                   "\"results\": [", r.rewritten);
        errno = err;
        status = report_one(out, &r, rc, json, false, true);
        if (json)
            printf("]}\n");
    }
    inspect_report_free(&r);
    return status;
}

int
main(int argc, char **argv)
{
    enum { OPT_GATE = 256, OPT_NO_DEFAULT_GATES, OPT_PKEY, OPT_REWRITE };
    static const struct option options[] = {
        { "json", no_argument, NULL, 'j' },
        { "self", no_argument, NULL, 's' },
        { "bench", no_argument, NULL, 'b' },
        { "gate", required_argument, NULL, OPT_GATE },
        { "no-default-gates", no_argument, NULL, OPT_NO_DEFAULT_GATES },
        { "pkey", required_argument, NULL, OPT_PKEY },
        { "rewrite", required_argument, NULL, OPT_REWRITE },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool json = false, self = false, bench = false, default_gates = true;
    const char *rewrite_out = NULL;
    int pkey = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'j': json = true; break;
        case 's': self = true; break;
        case 'b': bench = true; break;
        case OPT_NO_DEFAULT_GATES: default_gates = false; break;
        case OPT_REWRITE: rewrite_out = optarg; break;
        case OPT_PKEY: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 0 || v > 15) {
                fprintf(stderr, "mpk-inspect: --pkey wants 0..15: %s\n",
                        optarg);
                return 2;
            }
            pkey = (int) v;
            break;
        }
        case OPT_GATE:
            if (add_gate(optarg) != 0) {
                fprintf(stderr, "mpk-inspect: bad or too many --gate: %s\n",
                        optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (default_gates && inspect_gate_add_keystore(NULL) != 0)
        return 2;
    inspect_set_pkey(pkey);
    if (rewrite_out)
        return rewrite_one(rewrite_out, argc - optind, argv + optind, pkey,
                           json, self || bench);
    if (bench)
        return optind < argc ? mpk_inspect_bench(argc - optind, argv + optind)
                             : (usage(stderr), 2);
    if (self == (optind < argc)) {
        usage(stderr);
        return 2;
    }

    int status = 0;
    if (json)
        printf("{\"mode\": \"%s\", \"results\": [", self ? "process" : "files");
    if (self) {
        struct inspect_report r = { 0 };
        int rc = inspect_process(&r);
        status = report_one("self", &r, rc, json, true, true);
        inspect_report_free(&r);
    }
    for (int i = optind; i < argc; i++) {
        struct inspect_report r = { 0 };
        int rc = inspect_file(argv[i], &r);
        int s = report_one(argv[i], &r, rc, json, false, i == optind);
        if (s > status)
            status = s;
        inspect_report_free(&r);
    }
    if (json)
        printf("]}\n");
    return status;
}
