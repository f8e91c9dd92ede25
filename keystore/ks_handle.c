/* ks_handle: generation-tagged handles.  See ks_handle.h. */

#include "ks_handle.h"

#include <stddef.h>

#define GEN_BITS    36
#define INDEX_BITS  20
#define TYPE_BITS   8

struct ks_slot {
    void      *obj;                         /* NULL: free */
    uint64_t   generation;                  /* of the live or next handle */
    uint8_t    type;
};

/*
 * All static: this is keystore data, tagged as T memory.  No lock: only T
 * uses handles, and the gate lets one thread into T at a time (its in-use
 * flag ends the process on a concurrent entry); a lookup runs per record.
 */
static struct ks_slot   slots[KS_HANDLE_SLOTS];
static uint32_t         free_stack[KS_HANDLE_SLOTS];
static uint32_t         nfree;
static uint32_t         nused;              /* slots ever handed out */
static unsigned         live;

/* The unit test lowers the limit to see slots retire. */
#ifndef KS_HANDLE_GEN_MAX
#define KS_HANDLE_GEN_MAX  (((uint64_t) 1 << GEN_BITS) - 1)
#endif

_Static_assert(KS_HANDLE_SLOTS <= (1u << INDEX_BITS), "index field too small");

static ks_handle_t
encode(uint32_t index, uint64_t generation, unsigned type)
{
    return generation << (INDEX_BITS + TYPE_BITS)
           | (uint64_t) index << TYPE_BITS | type;
}

/* The slot h names if h is live and of that type. */
static struct ks_slot *
lookup(ks_handle_t h, unsigned type)
{
    uint64_t index = (h >> TYPE_BITS) & ((1u << INDEX_BITS) - 1);
    uint64_t generation = h >> (INDEX_BITS + TYPE_BITS);
    struct ks_slot *s;

    if (type == 0 || (h & 0xff) != type || index >= nused) {
        return NULL;
    }
    s = &slots[index];
    if (s->obj == NULL || s->generation != generation || s->type != type) {
        return NULL;
    }
    return s;
}

ks_handle_t
ks_handle_new(unsigned type, void *obj)
{
    uint32_t index;

    if (type == 0 || type > 0xff || obj == NULL) {
        return 0;
    }
    if (nfree > 0) {
        index = free_stack[--nfree];
    } else if (nused < KS_HANDLE_SLOTS) {
        index = nused++;
        slots[index].generation = 1;
    } else {
        return 0;                           /* all slots in use */
    }
    slots[index].obj = obj;
    slots[index].type = (uint8_t) type;
    live++;
    return encode(index, slots[index].generation, type);
}

void *
ks_handle_get(ks_handle_t h, unsigned type)
{
    struct ks_slot *s = lookup(h, type);

    return s != NULL ? s->obj : NULL;
}

void *
ks_handle_free(ks_handle_t h, unsigned type)
{
    struct ks_slot *s = lookup(h, type);
    void *obj = NULL;

    if (s != NULL) {
        obj = s->obj;
        s->obj = NULL;
        s->type = 0;
        live--;
        /* every copy of h is stale from now on; a slot that has used up
         * its generations is retired rather than reused */
        if (s->generation < KS_HANDLE_GEN_MAX) {
            s->generation++;
            free_stack[nfree++] = (uint32_t) (s - slots);
        }
    }
    return obj;
}

unsigned
ks_handle_count(void)
{
    return live;
}
