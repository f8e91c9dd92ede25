
/*
 * mpk-tls: a locked-down worker's signals (U, workers).
 *
 * A signal handler needs rt_sigreturn, and rt_sigreturn restores PKRU from
 * a frame that U can forge; a signal that lands while T runs would write
 * T's registers into a U-readable frame.  So a keystore worker runs no
 * signal handler at all: the asynchronous signals NGINX handles (HUP,
 * USR1, WINCH, TERM, QUIT, USR2, ALRM, INT, IO, CHLD) are blocked and
 * read from a signalfd in NGINX's event loop, which calls NGINX's own
 * handler (ngx_signal_handler, found with sigaction() and then replaced
 * by the default action) from ordinary code.
 * It only sets flags (ngx_quit, ngx_reopen, ngx_event_timer_alarm, ...),
 * which the worker's cycle reads after each event loop iteration, exactly
 * as after a real signal.  Then the lockdown denies rt_sigreturn,
 * rt_sigaction and sigaltstack.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include <sys/signalfd.h>

#include "ngx_http_keystore.h"


typedef void (*ngx_http_keystore_sa_pt)(int signo, siginfo_t *si, void *uc);


static void ngx_http_keystore_signal_read(ngx_event_t *rev);


static int  ngx_http_keystore_signals[] = {
    SIGHUP, SIGUSR1, SIGWINCH, SIGTERM, SIGQUIT, SIGUSR2, SIGALRM, SIGINT,
    SIGIO, SIGCHLD
};

static ngx_http_keystore_sa_pt  ngx_http_keystore_handlers[_NSIG];
static void                   (*ngx_http_keystore_plain[_NSIG])(int signo);


ngx_int_t
ngx_http_keystore_signals_init(ngx_cycle_t *cycle)
{
    int                sig;
    ngx_uint_t         i;
    ngx_socket_t       fd;
    sigset_t           set;
    struct sigaction   sa;
    ngx_connection_t  *c;

    sigemptyset(&set);

    for (i = 0; i < sizeof(ngx_http_keystore_signals) / sizeof(int); i++) {
        sig = ngx_http_keystore_signals[i];

        if (sigaction(sig, NULL, &sa) == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "keystore: sigaction(%d) failed", sig);
            return NGX_ERROR;
        }

        if (sa.sa_flags & SA_SIGINFO) {
            ngx_http_keystore_handlers[sig] = sa.sa_sigaction;

        } else if (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN) {
            /* timer_resolution's SIGALRM handler takes the number only */
            ngx_http_keystore_plain[sig] = sa.sa_handler;

        } else {
            continue;       /* nothing to call */
        }

        sigaddset(&set, sig);
    }

    /* blocked first: what arrives in between stays pending for the fd */

    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "keystore: sigprocmask() failed");
        return NGX_ERROR;
    }

    /*
     * No handler stays installed: should one of these signals ever be
     * unblocked, its default action ends the worker instead of running a
     * handler that would need rt_sigreturn (ks_lockdown() checks that no
     * handler is left).  Blocked signals are queued whatever their action,
     * so the signalfd still gets SIGCHLD, SIGWINCH and SIGIO.
     */

    ngx_memzero(&sa, sizeof(struct sigaction));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);

    for (sig = 1; sig < _NSIG; sig++) {
        if ((ngx_http_keystore_handlers[sig] || ngx_http_keystore_plain[sig])
            && sigaction(sig, &sa, NULL) == -1)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "keystore: sigaction(%d, SIG_DFL) failed", sig);
            return NGX_ERROR;
        }
    }

    fd = signalfd(-1, &set, SFD_NONBLOCK|SFD_CLOEXEC);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "keystore: signalfd() failed");
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        (void) close(fd);
        return NGX_ERROR;
    }

    c->recv = ngx_recv;
    c->read->handler = ngx_http_keystore_signal_read;

    /* like NGINX's own channel to the master: open until the worker ends,
     * not a connection left behind at exit */
    c->read->channel = 1;

    c->read->log = cycle->log;
    c->write->log = cycle->log;

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_keystore_signal_read(ngx_event_t *rev)
{
    ssize_t                   n;
    siginfo_t                 si;
    ngx_connection_t         *c;
    ngx_http_keystore_sa_pt   handler;
    struct signalfd_siginfo   fi;

    c = rev->data;

    for ( ;; ) {
        n = read(c->fd, &fi, sizeof(struct signalfd_siginfo));

        if (n != (ssize_t) sizeof(struct signalfd_siginfo)) {
            if (n == -1 && ngx_errno != NGX_EAGAIN && ngx_errno != NGX_EINTR)
            {
                ngx_log_error(NGX_LOG_ALERT, rev->log, ngx_errno,
                              "keystore: read() from the signalfd failed");
            }

            return;
        }

        ngx_http_keystore_state.signals++;

        if (fi.ssi_signo >= _NSIG) {
            continue;
        }

        if (ngx_http_keystore_plain[fi.ssi_signo]) {
            ngx_http_keystore_plain[fi.ssi_signo](fi.ssi_signo);
            continue;
        }

        handler = ngx_http_keystore_handlers[fi.ssi_signo];

        if (handler == NULL) {
            continue;
        }

        /* what ngx_signal_handler reads of it: the sender, for its log */

        ngx_memzero(&si, sizeof(siginfo_t));
        si.si_signo = fi.ssi_signo;
        si.si_code = fi.ssi_code;
        si.si_pid = fi.ssi_pid;
        si.si_uid = fi.ssi_uid;

        handler(fi.ssi_signo, &si, NULL);
    }
}
