/*
 * The syscall policy of ks_lockdown(), call by call (test_lockdown.c):
 * each call once without lockdown, once with ks_lockdown(0) and once with
 * ks_lockdown(KS_LOCKDOWN_SIGNALS), in a child running as root.  Every
 * call is chosen so that without the filter the kernel gives a result of
 * its own (success, or an errno such as ENOENT or EINVAL from checking
 * the arguments), which the filter's EPERM (ENOSYS for clone3) replaces;
 * and the calls the policy must leave alone are in the list too.
 */

#ifndef LOCKDOWN_POLICY_H
#define LOCKDOWN_POLICY_H

#define LK_POLICY_MAX  48

struct lk_policy {
    unsigned  n;
    int       err[LK_POLICY_MAX];           /* 0: succeeded; else errno */
};

/* Before lockdown: a thread that will make a denied call afterwards
 * (the filter must reach threads that exist already: TSYNC). */
void lk_policy_prep(struct lk_policy *p);

/* Make every call of the list; results in p. */
void lk_policy_run(struct lk_policy *p);

const char *lk_policy_name(unsigned i);

/* The errno call i must give (0: success); mode 0 without lockdown, 1
 * with ks_lockdown(0), 2 with KS_LOCKDOWN_SIGNALS. */
int lk_policy_expected(unsigned i, int mode);

/* The table of the three runs, as TAP comments. */
void lk_policy_print(const struct lk_policy res[3]);

#endif /* LOCKDOWN_POLICY_H */
