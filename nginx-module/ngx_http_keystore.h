
/*
 * mpk-tls: the NGINX module's shared declarations (U).
 *
 * ngx_http_keystore_module.c   directives, configuration hooks, early setup
 * ngx_http_keystore_check.c    what "nginx -t" refuses with "keystore on"
 * ngx_http_keystore_worker.c   per worker: inspection, rewriting, lockdown
 * ngx_http_keystore_signals.c  per worker: signals through a signalfd
 * ngx_http_keystore_status.c   the keystore_status handler
 */


#ifndef _NGX_HTTP_KEYSTORE_H_INCLUDED_
#define _NGX_HTTP_KEYSTORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the property query of the SSL_CTXs of servers with "keystore on" */
#define NGX_HTTP_KEYSTORE_PROPQ  "?provider=keystore"

/* the URI scheme of keys that the keystore reads itself */
#define NGX_HTTP_KEYSTORE_SCHEME  "keystore:"


typedef struct {
    ngx_flag_t                     enable;
    u_char                        *file;    /* where "keystore" was set */
    ngx_uint_t                     line;
} ngx_http_keystore_srv_conf_t;


typedef struct {
    ngx_str_t                      seal_key;
    u_char                        *seal_key_file;
    ngx_uint_t                     seal_key_line;

    /* servers with "keystore on" (known after the servers' merge) */
    ngx_uint_t                     enabled;

    /* the http{} level's server configuration (the servers' parent) */
    ngx_http_keystore_srv_conf_t  *http_kscf;
} ngx_http_keystore_main_conf_t;


/* what this process knows of its keystore and of its inspection */
typedef struct {
    ngx_uint_t                     ready;       /* ks_init() and provider */
    ngx_uint_t                     failed;      /* tried once, for good */
    char                           why[256];    /* if failed */

    ngx_uint_t                     inspected;   /* this worker was */
    size_t                         inspected_pages;
    size_t                         rewritten_sites;
    size_t                         unsafe_sites;

    ngx_uint_t                     locked;      /* ks_lockdown() done */
    uint64_t                       signals;     /* read from the signalfd */
} ngx_http_keystore_state_t;


extern ngx_module_t               ngx_http_keystore_module;
extern ngx_http_keystore_state_t  ngx_http_keystore_state;


ngx_int_t ngx_http_keystore_setup(ngx_conf_t *cf);
char *ngx_http_keystore_check_server(ngx_conf_t *cf,
    ngx_http_keystore_main_conf_t *kmcf, ngx_http_keystore_srv_conf_t *kscf);
char *ngx_http_keystore_check_listens(ngx_conf_t *cf);
ngx_int_t ngx_http_keystore_check_user(ngx_cycle_t *cycle);
ngx_int_t ngx_http_keystore_check_pcre_jit(ngx_cycle_t *cycle);
ngx_int_t ngx_http_keystore_init_worker(ngx_cycle_t *cycle);
ngx_int_t ngx_http_keystore_signals_init(ngx_cycle_t *cycle);
char *ngx_http_keystore_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_KEYSTORE_H_INCLUDED_ */
