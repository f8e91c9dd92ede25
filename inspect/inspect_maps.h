/*
 * inspect_maps.h — the mappings of this process, from /proc/self/maps.
 */
#ifndef MPKTLS_INSPECT_MAPS_H
#define MPKTLS_INSPECT_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct insp_mapping {
    uint64_t start, end, offset;
    unsigned dev_major, dev_minor;
    uint64_t inode;
    bool readable, executable;
    char path[4096];                /* "" for anonymous memory */
};

/* One line of a maps file; 0, or -1 if it does not parse. */
int insp_maps_parse_line(const char *line, struct insp_mapping *m);

/* The executable mappings, in address order (malloc'd; *n of them).
 * 0, or -1 if maps could not be read or memory ran out. */
int insp_maps_read_executable(const char *maps_path,
                              struct insp_mapping **out, size_t *n);

/* All mappings, in address order (the rewriter looks for free space). */
int insp_maps_read_all(const char *maps_path, struct insp_mapping **out,
                       size_t *n);

#endif
