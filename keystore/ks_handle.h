/*
 * ks_handle: opaque, generation-tagged handles for T objects.  (T)
 *
 * U never holds a pointer to a T object (a key, a cipher context); it
 * holds a 64-bit handle.  A handle names a slot, the slot's generation and
 * the object's type:
 *
 *     bits 63..28  generation (36 bits, never 0)
 *     bits 27..8   slot index (20 bits)
 *     bits  7..0   type
 *
 * Freeing an object bumps its slot's generation, so every copy of the old
 * handle is rejected from then on (stale); a slot whose generation would
 * wrap is retired, never reused.  A forged handle names an unused slot, a
 * wrong generation or a wrong type and is rejected; 0 is never a handle.
 * Type tags stop a handle of one kind (a cipher context) from being used
 * as another (a private key).
 */

#ifndef KS_HANDLE_H
#define KS_HANDLE_H

#include <stdint.h>

typedef uint64_t  ks_handle_t;

#define KS_HANDLE_SLOTS  (1u << 16)         /* objects alive at once */

/* A new handle for obj of the given type (1..255), or 0 if none is free. */
ks_handle_t ks_handle_new(unsigned type, void *obj);

/* The object behind h if h is live and of that type, else NULL. */
void *ks_handle_get(ks_handle_t h, unsigned type);

/*
 * Ends h: returns its object (the caller frees it) if h was live and of
 * that type, else NULL and nothing changes.
 */
void *ks_handle_free(ks_handle_t h, unsigned type);

/* Handles alive now. */
unsigned ks_handle_count(void);

#endif /* KS_HANDLE_H */
