
/*
 * mpk-tls: "keystore_status" (U, workers): a location handler, like
 * stub_status, that shows the serving worker's keystore as plain-text
 * "key: value" lines.  Each worker has its own keystore, so each request
 * sees one worker's figures (the pid says which).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "keystore.h"
#include "ngx_http_keystore.h"


#define NGX_HTTP_KEYSTORE_STATUS_LINES  10


static ngx_int_t ngx_http_keystore_status_handler(ngx_http_request_t *r);


char *
ngx_http_keystore_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_keystore_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_keystore_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_chain_t                 out;
    struct ks_stats             st;
    unsigned                    pieces;
    ngx_http_keystore_state_t  *ks = &ngx_http_keystore_state;
    char                        desc[128];

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    r->headers_out.content_type_len = sizeof("text/plain") - 1;
    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_lowcase = NULL;

    b = ngx_create_temp_buf(r->pool,
                            NGX_HTTP_KEYSTORE_STATUS_LINES
                            * (sizeof("t_heap_peak_bytes: \n") + NGX_OFF_T_LEN)
                            + sizeof("lockdown: off ()\n") + 128
                            + sizeof("signals: \n") + NGX_INT64_LEN);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out.buf = b;
    out.next = NULL;

    b->last = ngx_sprintf(b->last, "pid: %P\n", ngx_pid);

    /* a worker of a configuration with "keystore on" somewhere */

    if (!ks->ready || !ks->inspected || ks_stats(&st) != 0) {
        b->last = ngx_sprintf(b->last, "keystore: off\n");

    } else {
        b->last = ngx_sprintf(b->last,
                              "keystore: on\n"
                              "pkey: %d\n"
                              "gate_crossings: %uL\n"
                              "t_heap_bytes: %uL\n"
                              "t_heap_peak_bytes: %uL\n"
                              "inspected_pages: %uz\n"
                              "rewritten_sites: %uz\n"
                              "unsafe_sites: %uz\n",
                              st.pkey, st.gate_crossings, st.t_heap_bytes,
                              st.t_heap_peak_bytes, ks->inspected_pages,
                              ks->rewritten_sites, ks->unsafe_sites);

        /* read from the kernel now, not remembered: "on" only if every
         * piece is in force in this worker */

        pieces = ks_lockdown_status(desc, sizeof(desc));

        if (pieces == KS_LOCKDOWN_ALL) {
            b->last = ngx_sprintf(b->last, "lockdown: on\n");

        } else {
            b->last = ngx_sprintf(b->last, "lockdown: off (%s)\n", desc);
        }

        if (ks->locked) {
            b->last = ngx_sprintf(b->last, "signals: %uL\n", ks->signals);
        }
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}
