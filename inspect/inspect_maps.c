/*
 * inspect_maps.c — read /proc/self/maps.  The whole file is read first and
 * parsed afterwards, so that nothing the parser allocates can change the
 * list it is reading (the kernel produces it in chunks, one per read).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inspect_maps.h"

int
insp_maps_parse_line(const char *line, struct insp_mapping *m)
{
    char perms[5];
    int path_at = -1;
    memset(m, 0, sizeof(*m));
    /* start-end perms offset major:minor inode [path] */
    if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64
                     " %n",
               &m->start, &m->end, perms, &m->offset, &m->dev_major,
               &m->dev_minor, &m->inode, &path_at) != 7
        || path_at < 0 || m->end <= m->start || strlen(perms) != 4)
        return -1;
    m->readable = perms[0] == 'r';
    m->executable = perms[2] == 'x';
    const char *path = line + path_at;
    size_t n = strcspn(path, "\n");
    if (n >= sizeof(m->path))
        n = sizeof(m->path) - 1;
    memcpy(m->path, path, n);
    m->path[n] = '\0';
    return 0;
}

static char *
read_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0) {
            free(buf);
            buf = NULL;
        } else if (got == 0) {
            buf[n] = '\0';
            break;
        } else {
            n += (size_t) got;
        }
    }
    close(fd);
    *len = n;
    return buf;
}

static int
read_mappings(const char *maps_path, bool executable_only,
              struct insp_mapping **out, size_t *n)
{
    size_t len;
    char *text = read_all(maps_path, &len);
    if (!text)
        return -1;
    struct insp_mapping *m = NULL, cur;
    size_t k = 0, cap = 0;
    int rc = 0;
    for (char *line = text; *line && rc == 0;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (insp_maps_parse_line(line, &cur) == 0
            && (cur.executable || !executable_only)) {
            if (k == cap) {
                cap = cap ? cap * 2 : 32;
                struct insp_mapping *nm = realloc(m, cap * sizeof(*m));
                if (!nm)
                    rc = -1;
                else
                    m = nm;
            }
            if (rc == 0)
                m[k++] = cur;
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    free(text);
    if (rc != 0) {
        free(m);
        return -1;
    }
    *out = m;
    *n = k;
    return 0;
}

int
insp_maps_read_executable(const char *maps_path, struct insp_mapping **out,
                          size_t *n)
{
    return read_mappings(maps_path, true, out, n);
}

int
insp_maps_read_all(const char *maps_path, struct insp_mapping **out,
                   size_t *n)
{
    return read_mappings(maps_path, false, out, n);
}
