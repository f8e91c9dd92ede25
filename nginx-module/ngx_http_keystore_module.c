
/*
 * mpk-tls: the NGINX side of the keystore.
 *
 * For now the module only parses and validates its directive,
 *
 *     keystore on | off;      (http, server; default off)
 *
 * so that configurations and the build have their final shape.  Enabling
 * the keystore per worker, the early provider setup and the checks that
 * refuse unprotectable configurations come with the keystore itself.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct {
    ngx_flag_t  enable;
} ngx_http_keystore_srv_conf_t;


static void *ngx_http_keystore_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_keystore_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_command_t  ngx_http_keystore_commands[] = {

    { ngx_string("keystore"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_keystore_srv_conf_t, enable),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_keystore_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
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
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


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

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    return NGX_CONF_OK;
}
