/*
 * ks_platform: can this machine run the keystore?  (U; no MPK needed)
 *
 * The keystore needs protection keys in the CPU (CPUID.7.0:ECX PKU) enabled
 * by the kernel (OSPKE), a kernel that can allocate a key, and Linux >= 6.12
 * (pkey-safe signal frames, mseal).  The NGINX module uses this to refuse
 * `keystore on` at `nginx -t` with the reason; configure prints the same
 * facts at build time.
 */

#ifndef KS_PLATFORM_H
#define KS_PLATFORM_H

#include <stddef.h>

#define KS_KERNEL_MIN_MAJOR 6
#define KS_KERNEL_MIN_MINOR 12

/* Bits of ks_platform_cpu_features(). */
#define KS_CPU_PKU   0x1u   /* the CPU has protection keys */
#define KS_CPU_OSPKE 0x2u   /* the OS has enabled them (CR4.PKE) */

/* PKU/OSPKE as CPUID reports them for this CPU. */
unsigned ks_platform_cpu_features(void);

/*
 * Whether a kernel release string ("6.18.44-fc-v669", "5.15.0-91-generic")
 * is at least major.minor: 1 yes, 0 no, -1 not a release string.
 */
int ks_platform_kernel_at_least(const char *release, unsigned major,
    unsigned minor);

/*
 * Everything together, on the running machine: 0 if the keystore can be
 * enabled, else -1 with a one-line reason in why (always NUL-terminated).
 */
int ks_platform_check(char *why, size_t len);

#endif /* KS_PLATFORM_H */
