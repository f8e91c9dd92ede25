
/*
 * mpk-tls: the NGINX side of the keystore (U).
 *
 *     keystore on | off;          http, server (default off)
 *     keystore_seal_key FILE;     http
 *     keystore_status;            location
 *
 * The first "keystore on" in a configuration creates the keystore in the
 * master (ks_init(): the protection key, T heap and stack), registers the
 * keystore provider and loads it next to the default provider.  That is
 * before any SSL_CTX of an http server exists: the ssl module makes them
 * when it merges the servers, after the whole http{} block is parsed.
 * Only the SSL_CTXs of servers with "keystore on" use the provider: they
 * are made with the property query "?provider=keystore" (through the hook
 * of nginx-module/patches/0001); all others, stream and mail ones too,
 * stay with the default provider, as without this module.  Reloads re-use
 * the keystore; workers inherit it by fork and inspect themselves
 * (ngx_http_keystore_worker.c) before serving.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/provider.h>

#include "keystore.h"
#include "ks_platform.h"
#include "ks_provider.h"
#include "ngx_http_keystore.h"


static ngx_int_t ngx_http_keystore_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_keystore_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_keystore_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_keystore_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_keystore_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_keystore(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_keystore_seal_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_keystore_seal_key_check(ngx_log_t *log,
    ngx_http_keystore_main_conf_t *kmcf);
static ngx_int_t ngx_http_keystore_default_properties(void);
static const char *ngx_http_keystore_ctx_propq(ngx_ssl_t *ssl, void *data);
static ngx_int_t ngx_http_keystore_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_keystore_init_process(ngx_cycle_t *cycle);


ngx_http_keystore_state_t  ngx_http_keystore_state;

/* the configuration being parsed, for the SSL_CTX hook (NULL otherwise) */
static ngx_conf_t  *ngx_http_keystore_cf;


static ngx_command_t  ngx_http_keystore_commands[] = {

    { ngx_string("keystore"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_http_keystore,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("keystore_seal_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_keystore_seal_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("keystore_status"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_keystore_status,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_keystore_module_ctx = {
    ngx_http_keystore_preconfiguration,    /* preconfiguration */
    ngx_http_keystore_postconfiguration,   /* postconfiguration */

    ngx_http_keystore_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_keystore_create_srv_conf,     /* create server configuration */
    ngx_http_keystore_merge_srv_conf,      /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_keystore_module = {
    NGX_MODULE_V1,
    &ngx_http_keystore_module_ctx,         /* module context */
    ngx_http_keystore_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_keystore_init_module,         /* init module */
    ngx_http_keystore_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_keystore_preconfiguration(ngx_conf_t *cf)
{
    ngx_http_keystore_main_conf_t  *kmcf;

    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_keystore_module);

    /* here cf->ctx is the http{} block's own: its server configuration */
    kmcf->http_kscf = ngx_http_conf_get_module_srv_conf(cf,
                                                     ngx_http_keystore_module);

    ngx_http_keystore_cf = cf;
    ngx_ssl_ctx_propq = ngx_http_keystore_ctx_propq;

    return NGX_OK;
}


static ngx_int_t
ngx_http_keystore_postconfiguration(ngx_conf_t *cf)
{
    char                           *rv;
    ngx_http_keystore_main_conf_t  *kmcf;

    ngx_http_keystore_cf = NULL;

    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_keystore_module);

    if (!kmcf->enabled) {
        return NGX_OK;
    }

    rv = ngx_http_keystore_check_listens(cf);
    if (rv != NGX_CONF_OK) {
        return NGX_ERROR;
    }

    if (kmcf->seal_key.len == 0) {
        return NGX_OK;
    }

    if (ngx_conf_full_name(cf->cycle, &kmcf->seal_key, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * Only checked here: the configuration may still fail after the http
     * block, and then the running one, its sealing key included, must stay
     * in force.  init_module, after the new cycle is committed, loads it.
     */

    if (ngx_http_keystore_seal_key_check(cf->log, kmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Whether T accepts the file, without replacing this process's sealing key:
 * a child process loads it into its own copy of the keystore.  (In the
 * master all signals are blocked while it reconfigures, so no SIGCHLD
 * handler reaps the child first.)
 */

static ngx_int_t
ngx_http_keystore_seal_key_check(ngx_log_t *log,
    ngx_http_keystore_main_conf_t *kmcf)
{
    int        fd[2], status;
    char       err[512];
    pid_t      pid;
    ssize_t    n;

    if (pipe(fd) == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "pipe() failed");
        return NGX_ERROR;
    }

    pid = fork();

    if (pid == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "fork() failed");
        (void) close(fd[0]);
        (void) close(fd[1]);
        return NGX_ERROR;
    }

    if (pid == 0) {
        (void) close(fd[0]);
        n = ks_seal_key_load_file((char *) kmcf->seal_key.data, err,
                                  sizeof(err));
        if (n != 0) {
            (void) write(fd[1], err, ngx_strlen(err));
        }
        _exit(n == 0 ? 0 : 1);
    }

    (void) close(fd[1]);

    n = read(fd[0], err, sizeof(err) - 1);
    err[n > 0 ? n : 0] = '\0';
    (void) close(fd[0]);

    while (waitpid(pid, &status, 0) == -1) {
        if (ngx_errno != NGX_EINTR) {
            ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "waitpid() failed");
            return NGX_ERROR;
        }
    }

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, log, 0,
                  "\"keystore_seal_key\" cannot be used: %s "
                  "(a regular file of 32 bytes or 64 hex digits, "
                  "not readable by group or others) in %s:%ui",
                  err[0] ? err : "the check failed",
                  kmcf->seal_key_file, kmcf->seal_key_line);

    return NGX_ERROR;
}


static void *
ngx_http_keystore_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_keystore_main_conf_t  *kmcf;

    kmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_keystore_main_conf_t));
    if (kmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     kmcf->seal_key = { 0, NULL };
     *     kmcf->enabled = 0;
     *     kmcf->http_kscf = NULL;
     */

    return kmcf;
}


static void *
ngx_http_keystore_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_keystore_srv_conf_t  *kscf;

    kscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_keystore_srv_conf_t));
    if (kscf == NULL) {
        return NULL;
    }

    kscf->enable = NGX_CONF_UNSET;

    return kscf;
}


static char *
ngx_http_keystore_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_keystore_srv_conf_t *prev = parent;
    ngx_http_keystore_srv_conf_t *conf = child;

    ngx_http_keystore_main_conf_t  *kmcf;

    if (conf->enable == NGX_CONF_UNSET) {
        conf->file = prev->file;
        conf->line = prev->line;
    }

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_keystore_module);
    kmcf->enabled++;

    /* the ssl module, merged before this one, has made the SSL_CTX */

    return ngx_http_keystore_check_server(cf, kmcf, conf);
}


/* "keystore on | off": as ngx_conf_set_flag_slot, plus the early setup */

static char *
ngx_http_keystore(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_keystore_srv_conf_t *kscf = conf;

    char  *rv;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    kscf->file = cf->conf_file->file.name.data;
    kscf->line = cf->conf_file->line;

    if (kscf->enable && ngx_http_keystore_setup(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_keystore_seal_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_keystore_main_conf_t *kmcf = conf;

    ngx_str_t  *value;

    if (kmcf->seal_key.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "takes a file name";
    }

    kmcf->seal_key = value[1];
    kmcf->seal_key_file = cf->conf_file->file.name.data;
    kmcf->seal_key_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/*
 * Fetches that name no provider (every SSL_CTX without "keystore on") must
 * not land on the keystore: with two providers offering an algorithm, an
 * empty query may pick either.  A configuration's own default properties
 * (openssl.cnf) are left alone.
 */

static ngx_int_t
ngx_http_keystore_default_properties(void)
{
    int    ok;
    char  *props;

    props = EVP_get1_default_properties(NULL);

    ok = (props == NULL || props[0] == '\0')
         ? EVP_set_default_properties(NULL, "?provider=default") : 1;

    OPENSSL_free(props);

    return ok ? NGX_OK : NGX_ERROR;
}


/*
 * Once per process (the master; "nginx -t" and signallers parse too):
 * the keystore, then the provider, before any SSL_CTX of a server with
 * "keystore on" exists.  A failure is for good: ks_init() has no retry.
 */

ngx_int_t
ngx_http_keystore_setup(ngx_conf_t *cf)
{
    ngx_http_keystore_state_t  *st = &ngx_http_keystore_state;

    if (st->ready) {
        return NGX_OK;
    }

    if (!st->failed) {
        st->failed = 1;

        if (ks_platform_check(st->why, sizeof(st->why)) != 0
            || ks_init(NULL, st->why, sizeof(st->why)) != 0)
        {
            goto failed;
        }

        /*
         * The default provider is loaded first: the keystore forwards
         * unmarked calls to it, and every SSL_CTX without "keystore on"
         * keeps using it.
         */

        if (OSSL_PROVIDER_load(NULL, "default") == NULL
            || !OSSL_PROVIDER_add_builtin(NULL, KS_PROVIDER_NAME,
                                          ks_provider_init)
            || OSSL_PROVIDER_load(NULL, KS_PROVIDER_NAME) == NULL)
        {
            ngx_snprintf((u_char *) st->why, sizeof(st->why) - 1,
                         "the keystore provider did not load%Z");
            goto failed;
        }

        if (ngx_http_keystore_default_properties() != NGX_OK) {
            ngx_snprintf((u_char *) st->why, sizeof(st->why) - 1,
                         "EVP_set_default_properties() failed%Z");
            goto failed;
        }

        /* see ks_provider.h: the method cache must meet our methods first */

        if (!ks_provider_prime(NULL, NGX_HTTP_KEYSTORE_PROPQ)) {
            ngx_snprintf((u_char *) st->why, sizeof(st->why) - 1,
                         "the keystore provider is not preferred under "
                         "\"" NGX_HTTP_KEYSTORE_PROPQ "\"%Z");
            goto failed;
        }

        st->failed = 0;
        st->ready = 1;

        return NGX_OK;
    }

failed:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"keystore on\" cannot be enabled: %s; "
                       "use \"keystore off\" on this machine", st->why);

    return NGX_ERROR;
}


/* the SSL_CTX hook (ngx_ssl_ctx_propq): only for "keystore on" servers */

static const char *
ngx_http_keystore_ctx_propq(ngx_ssl_t *ssl, void *data)
{
    ngx_flag_t                      enable;
    ngx_conf_t                     *cf;
    ngx_http_keystore_srv_conf_t   *kscf;
    ngx_http_keystore_main_conf_t  *kmcf;

    cf = ngx_http_keystore_cf;

    /*
     * Only an http server's own SSL_CTX, made while the ssl module merges
     * it: then cf->ctx holds that server's configurations.  Upstream
     * (proxy_ssl) contexts pass no data; stream and mail ones are made
     * while their own blocks are parsed.
     */

    if (cf == NULL || data == NULL || cf->module_type != NGX_HTTP_MODULE
        || data != ngx_http_conf_get_module_srv_conf(cf, ngx_http_ssl_module))
    {
        return NULL;
    }

    kscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_keystore_module);
    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_keystore_module);

    /* this module's merge comes after the ssl module's: merge by hand */

    enable = kscf->enable;

    if (enable == NGX_CONF_UNSET && kmcf->http_kscf) {
        enable = kmcf->http_kscf->enable;
    }

    return (enable == 1) ? NGX_HTTP_KEYSTORE_PROPQ : NULL;
}


static ngx_int_t
ngx_http_keystore_init_module(ngx_cycle_t *cycle)
{
    char                            err[512];
    struct ks_stats                 st;
    ngx_core_conf_t                *ccf;
    ngx_http_keystore_main_conf_t  *kmcf;

    if (ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module)
        == NULL)
    {
        return NGX_OK;
    }

    kmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_keystore_module);

    if (kmcf == NULL || !kmcf->enabled) {
        return NGX_OK;
    }

    if (ngx_http_keystore_check_user(cycle) != NGX_OK
        || ngx_http_keystore_check_pcre_jit(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * The new cycle is committed: its sealing key replaces the running
     * one in the master, and workers started from now on inherit it.  T
     * reads the file itself; the key is never in NGINX's memory.
     */

    if (kmcf->seal_key.len && !ngx_test_config
        && ngx_process != NGX_PROCESS_SIGNALLER
        && ks_seal_key_load_file((char *) kmcf->seal_key.data, err,
                                 sizeof(err)) != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"keystore_seal_key\" cannot be loaded: %s", err);
        return NGX_ERROR;
    }

    if (!ngx_test_config && ngx_process != NGX_PROCESS_SIGNALLER
        && ks_stats(&st) == 0)
    {
        ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx,
                                               ngx_core_module);

        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "keystore: active for %ui server(s), protection key "
                      "%d; each of %i worker(s) inspects itself before "
                      "serving", kmcf->enabled, st.pkey,
                      ccf->worker_processes);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_keystore_init_process(ngx_cycle_t *cycle)
{
    ngx_http_keystore_main_conf_t  *kmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module)
        == NULL)
    {
        return NGX_OK;
    }

    kmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_keystore_module);

    if (kmcf == NULL || !kmcf->enabled) {
        return NGX_OK;
    }

    return ngx_http_keystore_init_worker(cycle);
}
