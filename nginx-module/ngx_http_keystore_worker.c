
/*
 * mpk-tls: a worker's own start (U): before it serves, the worker proves
 * that only the keystore's gates can switch protection domains.  Every
 * executable mapping is scanned at every byte offset for WRPKRU and
 * XRSTOR; unsafe sites (libc's pkey_set, ld.so's lazy-binding XRSTORs,
 * ...) are rewritten into checked forms (inspect/).  Anything left unsafe
 * ends the worker (fail closed: exit code 2, which the master does not
 * respawn, since the next worker would find the same).  Then it locks
 * itself down.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "inspect.h"
#include "keystore.h"
#include "ngx_http_keystore.h"


static ngx_int_t ngx_http_keystore_lock_down(ngx_cycle_t *cycle);
static void ngx_http_keystore_inspect_log(void *ctx, const char *line);


ngx_int_t
ngx_http_keystore_init_worker(ngx_cycle_t *cycle)
{
    ngx_int_t                   rc;
    struct ks_stats             st;
    struct inspect_report       report;
    ngx_http_keystore_state_t  *ks = &ngx_http_keystore_state;

    /*
     * Signals first, before the worker's first gate call: NGINX unblocked
     * them all at the start of the worker, and a handler that runs while
     * T does (a SIGALRM of timer_resolution, a SIGUSR1 sent to the new
     * worker) gets its frame on T's stack but U's PKRU, and the worker
     * dies of SIGSEGV when the handler returns.
     */

    if (ngx_http_keystore_signals_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ks->ready || ks_stats(&st) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "keystore: not set up in this worker");
        return NGX_ERROR;
    }

    ngx_memzero(&report, sizeof(struct inspect_report));

    inspect_set_log(ngx_http_keystore_inspect_log, cycle->log);
    inspect_gate_reset();

    if (inspect_gate_add_keystore("libkeystore.so") != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "keystore: cannot register the gates");
        return NGX_ERROR;
    }

    rc = inspect_rewrite_process(st.pkey, &report) == 0 ? NGX_OK : NGX_ERROR;

    ks->inspected_pages = report.pages;
    ks->rewritten_sites = report.rewritten;
    ks->unsafe_sites = report.unsafe + report.uninspected_pages;

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "keystore: inspection failed: %uz unsafe sites, "
                      "%uz pages unread; the worker stops",
                      report.unsafe, report.uninspected_pages);
        inspect_report_free(&report);
        return NGX_ERROR;
    }

    ks->inspected = 1;

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "keystore: worker %P uses protection key %d; inspected "
                  "%uz pages, rewrote %uz sites, none unsafe",
                  ngx_pid, st.pkey, report.pages, report.rewritten);

    inspect_report_free(&report);

    return ngx_http_keystore_lock_down(cycle);
}


/*
 * After inspection, before the first request (signals already go to a
 * signalfd, ngx_http_keystore_signals.c): the keystore seals T and all
 * code, makes the worker non-dumpable and loads the syscall filter
 * (ks_lockdown(), keystore/ks_lockdown.c).  Only a worker with every piece
 * in force serves.
 */

static ngx_int_t
ngx_http_keystore_lock_down(ngx_cycle_t *cycle)
{
    char                        err[256], desc[128];
    unsigned                    pieces;
    ngx_http_keystore_state_t  *ks = &ngx_http_keystore_state;

    if (ks_lockdown(KS_LOCKDOWN_SIGNALS, err, sizeof(err)) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "keystore: lockdown failed: %s; the worker stops", err);
        return NGX_ERROR;
    }

    pieces = ks_lockdown_status(desc, sizeof(desc));

    if (pieces != KS_LOCKDOWN_ALL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "keystore: lockdown incomplete (%s); the worker stops",
                      desc);
        return NGX_ERROR;
    }

    ks->locked = 1;

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "keystore: worker %P locked down (%s)", ngx_pid, desc);

    return NGX_OK;
}


static void
ngx_http_keystore_inspect_log(void *ctx, const char *line)
{
    ngx_log_t  *log = ctx;

    ngx_log_error(NGX_LOG_NOTICE, log, 0, "keystore: %s", line);
}
