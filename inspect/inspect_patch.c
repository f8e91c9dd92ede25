/*
 * inspect_patch.c — write into r-x text without making it writable.
 *
 * A write to /proc/self/mem is done by the kernel with FOLL_FORCE, as a
 * debugger sets a breakpoint: a private file mapping gets its own copy of
 * the page (copy-on-write), and the mapping keeps its protection, so the
 * text is never writable, let alone writable and executable, at any
 * moment.  This is legitimate only at startup, before lockdown; the
 * lockdown must close it (DESIGN.md, "Lockdown").
 *
 * There is no mprotect fallback: to write through mprotect the page would
 * have to lose PROT_EXEC (W^X), and the page being patched may hold code
 * this very call depends on (libc's own syscall wrappers, ld.so's lazy
 * binding).  If /proc/self/mem cannot be written (no /proc, or a kernel
 * booted with proc_mem.force_override=never, or a process that is not
 * dumpable and not root: /proc/self then belongs to root), rewriting
 * fails and the caller fails closed.
 *
 * The write is not atomic with respect to instruction fetch: rewriting
 * is done single-threaded, before NGINX starts threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "inspect_rewrite.h"

int
insp_text_write(uint64_t addr, const void *bytes, size_t len)
{
    uint8_t back[INSP_SPAN_MAX];
    if (len > sizeof(back)) {
        errno = EINVAL;
        return -1;
    }
    int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = -1;
    ssize_t w = pwrite(fd, bytes, len, (off_t) addr);
    if (w == (ssize_t) len) {
        /* read back what the CPU will fetch */
        ssize_t r = pread(fd, back, len, (off_t) addr);
        if (r == (ssize_t) len && memcmp(back, bytes, len) == 0)
            rc = 0;
        else if (r >= 0)
            errno = EIO;
    } else if (w >= 0) {
        errno = EIO;                    /* a short write */
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}
