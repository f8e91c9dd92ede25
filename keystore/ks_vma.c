/* ks_vma: the process's mappings from /proc/self/smaps.  See ks_vma.h. */

#define _GNU_SOURCE
#include "ks_vma.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "start-end perms offset major:minor inode   path" */
static int
parse_header(const char *line, struct ks_vma *v)
{
    unsigned long long s, e, off;
    int pathpos = 0;
    const char *path;

    memset(v, 0, sizeof(*v));
    if (sscanf(line, "%llx-%llx %4s %llx %lx:%lx %lu %n", &s, &e, v->perms,
               &off, &v->dev_major, &v->dev_minor, &v->inode, &pathpos) < 7
        || pathpos == 0 || e <= s)
    {
        return -1;
    }
    v->start = (uintptr_t) s;
    v->end = (uintptr_t) e;
    path = line + pathpos;
    snprintf(v->name, sizeof(v->name), "%.*s", (int) strcspn(path, "\n"),
             path);
    v->vsyscall = strcmp(v->name, "[vsyscall]") == 0;
    return 0;
}

/* " sl" as a whole word after "VmFlags:" */
static int
flags_sealed(const char *line)
{
    const char *p = line + strlen("VmFlags:");

    while ((p = strstr(p, "sl")) != NULL) {
        if (p[-1] == ' ' && (p[2] == ' ' || p[2] == '\n' || p[2] == '\0')) {
            return 1;
        }
        p += 2;
    }
    return 0;
}

int
ks_vma_list(struct ks_vma **out, size_t *n)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    struct ks_vma *list = NULL, *grown, v;
    size_t cap = 0, count = 0;
    char *line = NULL;
    size_t linecap = 0;
    int rc = 0;

    *out = NULL;
    *n = 0;
    if (f == NULL) {
        return -1;
    }
    while (getline(&line, &linecap, f) > 0) {
        if (strncmp(line, "VmFlags:", 8) == 0) {
            if (count > 0) {
                list[count - 1].sealed = flags_sealed(line);
            }
            continue;
        }
        /* a field line ("Rss:   4 kB") has no '-' before its first space */
        if (strchr(line, '-') == NULL
            || strchr(line, '-') > strchr(line, ' ')
            || parse_header(line, &v) != 0)
        {
            continue;
        }
        if (count == cap) {
            cap = cap ? 2 * cap : 256;
            grown = realloc(list, cap * sizeof(*list));
            if (grown == NULL) {
                rc = -1;
                break;
            }
            list = grown;
        }
        list[count++] = v;
    }
    if (rc == 0 && (ferror(f) || count == 0)) {
        rc = -1;
        errno = EIO;
    }
    free(line);
    fclose(f);
    if (rc != 0) {
        free(list);
        return -1;
    }
    *out = list;
    *n = count;
    return 0;
}

long
ks_vma_shared_writable_alias(const struct ks_vma *v, size_t n, size_t i)
{
    size_t j;

    if (!ks_vma_exec(&v[i]) || v[i].inode == 0) {
        return -1;
    }
    for (j = 0; j < n; j++) {
        if (j != i && v[j].inode == v[i].inode
            && v[j].dev_major == v[i].dev_major
            && v[j].dev_minor == v[i].dev_minor
            && v[j].perms[1] == 'w' && v[j].perms[3] == 's')
        {
            return (long) j;
        }
    }
    return -1;
}
