
/*
 * mpk-tls: what "nginx -t" refuses with "keystore on" (U, master).
 *
 * A configuration that would silently leave a TLS secret in NGINX's
 * memory, or hand the keystore a protocol it does not implement (which
 * would fail at the first handshake instead of at startup), is refused
 * with a message naming the directive and what to change.  Where the
 * user left a choice to NGINX's defaults (ciphers, groups), the server is
 * narrowed to what the keystore covers instead.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_keystore.h"


#if (NGX_PCRE)
extern ngx_module_t  ngx_regex_module;
#endif


/* ngx_http_ssl_module.c's default "ssl_ciphers" */
#define NGX_HTTP_KEYSTORE_NGINX_CIPHERS  "HIGH:!aNULL:!MD5"

/* what the keystore implements: TLS 1.2 ECDHE with AEAD ciphers */
#define NGX_HTTP_KEYSTORE_CIPHERS  "ECDHE+AESGCM:ECDHE+CHACHA20"

/* OpenSSL 3.5's default groups without FFDHE, which the keystore lacks */
#define NGX_HTTP_KEYSTORE_GROUPS                                            \
    "?*X25519MLKEM768 / ?*X25519:?secp256r1 / ?X448:?secp384r1:?secp521r1"


static char *ngx_http_keystore_refuse(ngx_conf_t *cf,
    ngx_http_keystore_srv_conf_t *kscf, const char *what, ngx_str_t *arg,
    const char *fix);
static char *ngx_http_keystore_check_keys(ngx_conf_t *cf,
    ngx_http_ssl_srv_conf_t *sscf, ngx_http_keystore_srv_conf_t *kscf);
static char *ngx_http_keystore_check_ciphers(ngx_conf_t *cf,
    ngx_http_ssl_srv_conf_t *sscf, ngx_http_keystore_srv_conf_t *kscf);
static char *ngx_http_keystore_check_group_list(ngx_conf_t *cf,
    ngx_http_keystore_srv_conf_t *kscf, ngx_str_t *list, const char *what);
static char *ngx_http_keystore_check_groups(ngx_conf_t *cf,
    ngx_http_ssl_srv_conf_t *sscf, ngx_http_keystore_srv_conf_t *kscf);
static ngx_uint_t ngx_http_keystore_has_command(ngx_http_ssl_srv_conf_t *sscf,
    const char *name);


char *
ngx_http_keystore_check_server(ngx_conf_t *cf,
    ngx_http_keystore_main_conf_t *kmcf, ngx_http_keystore_srv_conf_t *kscf)
{
    char                     *rv;
    ngx_http_ssl_srv_conf_t  *sscf;

    sscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_ssl_module);

    if (sscf == NULL || sscf->ssl.ctx == NULL) {
        return NGX_CONF_OK;      /* no TLS here: nothing to protect */
    }

    rv = ngx_http_keystore_check_keys(cf, sscf, kscf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (SSL_CTX_get_options(sscf->ssl.ctx) & SSL_OP_ENABLE_KTLS) {
        return ngx_http_keystore_refuse(cf, kscf,
                   "kTLS (\"ssl_conf_command Options KTLS\") would hand the "
                   "record keys to the kernel", NULL,
                   "remove KTLS from \"ssl_conf_command Options\"");
    }

    if (sscf->early_data == 1) {
        return ngx_http_keystore_refuse(cf, kscf,
                   "\"ssl_early_data on\" is not implemented by the keystore",
                   NULL, "set \"ssl_early_data off\"");
    }

    if (sscf->session_ticket_keys && kmcf->seal_key.len == 0) {
        return ngx_http_keystore_refuse(cf, kscf,
                   "\"ssl_session_ticket_key\" files outlive the sealing "
                   "key, which is random per start: resumption would fail "
                   "after a restart", NULL,
                   "add \"keystore_seal_key FILE;\" to the http block");
    }

    /* TLS 1.0 and 1.1 have PRFs the keystore lacks (and OpenSSL 3 refuses
     * them at its default security level anyway) */

    if (SSL_CTX_get_min_proto_version(sscf->ssl.ctx) < TLS1_2_VERSION
        && SSL_CTX_set_min_proto_version(sscf->ssl.ctx, TLS1_2_VERSION) == 0)
    {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "SSL_CTX_set_min_proto_version() failed");
        return NGX_CONF_ERROR;
    }

    rv = ngx_http_keystore_check_ciphers(cf, sscf, kscf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    return ngx_http_keystore_check_groups(cf, sscf, kscf);
}


/* the private keys must be read by T ("keystore:/path"), never by NGINX */

static char *
ngx_http_keystore_check_keys(ngx_conf_t *cf, ngx_http_ssl_srv_conf_t *sscf,
    ngx_http_keystore_srv_conf_t *kscf)
{
    size_t      n;
    ngx_str_t  *key;
    ngx_uint_t  i;

    if (sscf->certificate_values) {
        return ngx_http_keystore_refuse(cf, kscf,
                   "certificates with variables would load their keys in "
                   "workers, per handshake", NULL,
                   "name the files in \"ssl_certificate\" and "
                   "\"ssl_certificate_key\" without variables");
    }

    if (sscf->certificate_keys == NULL) {
        return NGX_CONF_OK;
    }

    n = sizeof(NGX_HTTP_KEYSTORE_SCHEME) - 1;
    key = sscf->certificate_keys->elts;

    for (i = 0; i < sscf->certificate_keys->nelts; i++) {

        if (key[i].len > n + 1
            && ngx_strncmp(key[i].data, NGX_HTTP_KEYSTORE_SCHEME, n) == 0
            && key[i].data[n] == '/')
        {
            continue;
        }

        return ngx_http_keystore_refuse(cf, kscf,
                   "\"ssl_certificate_key\" would read the private key into "
                   "NGINX's memory", &key[i],
                   "let the keystore read it: \"ssl_certificate_key "
                   NGX_HTTP_KEYSTORE_SCHEME "/absolute/path/key.pem\"");
    }

    return NGX_CONF_OK;
}


/* TLS 1.3 suites and TLS 1.2 ECDHE ciphers with AES-GCM or ChaCha20 */

static ngx_uint_t
ngx_http_keystore_cipher_covered(const SSL_CIPHER *c)
{
    int  kx, auth, enc;

    kx = SSL_CIPHER_get_kx_nid(c);
    auth = SSL_CIPHER_get_auth_nid(c);
    enc = SSL_CIPHER_get_cipher_nid(c);

    if (kx != NID_kx_any && kx != NID_kx_ecdhe) {
        return 0;
    }

    if (auth != NID_auth_any && auth != NID_auth_ecdsa
        && auth != NID_auth_rsa)
    {
        return 0;
    }

    return enc == NID_aes_128_gcm || enc == NID_aes_256_gcm
           || enc == NID_chacha20_poly1305;
}


static char *
ngx_http_keystore_check_ciphers(ngx_conf_t *cf, ngx_http_ssl_srv_conf_t *sscf,
    ngx_http_keystore_srv_conf_t *kscf)
{
    int                     i, n;
    ngx_str_t               name;
    const SSL_CIPHER       *c;
    STACK_OF(SSL_CIPHER)   *sk;

    if (ngx_strcmp(sscf->ciphers.data, NGX_HTTP_KEYSTORE_NGINX_CIPHERS) == 0
        && SSL_CTX_set_cipher_list(sscf->ssl.ctx, NGX_HTTP_KEYSTORE_CIPHERS)
           == 0)
    {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "SSL_CTX_set_cipher_list(\"%s\") failed",
                      NGX_HTTP_KEYSTORE_CIPHERS);
        return NGX_CONF_ERROR;
    }

    sk = SSL_CTX_get_ciphers(sscf->ssl.ctx);
    n = sk_SSL_CIPHER_num(sk);

    for (i = 0; i < n; i++) {
        c = sk_SSL_CIPHER_value(sk, i);

        if (ngx_http_keystore_cipher_covered(c)) {
            continue;
        }

        name.data = (u_char *) SSL_CIPHER_get_name(c);
        name.len = ngx_strlen(name.data);

        if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any) {
            return ngx_http_keystore_refuse(cf, kscf,
                       "the keystore does not implement the TLS 1.3 suite",
                       &name,
                       "leave \"ssl_conf_command Ciphersuites\" at its "
                       "default");
        }

        return ngx_http_keystore_refuse(cf, kscf,
                   "the keystore does not implement the cipher", &name,
                   "use \"ssl_ciphers " NGX_HTTP_KEYSTORE_CIPHERS "\"");
    }

    return NGX_CONF_OK;
}


static ngx_uint_t
ngx_http_keystore_group_covered(const char *name)
{
    static const char  *covered[] = {
        "X25519MLKEM768", "x25519", "secp256r1", "x448", "secp384r1",
        "secp521r1", "P-256", "P-384", "P-521", "prime256v1"
    };

    ngx_uint_t  i;

    for (i = 0; i < sizeof(covered) / sizeof(covered[0]); i++) {
        if (ngx_strcasecmp((u_char *) name, (u_char *) covered[i]) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * The groups named in a list ("X25519:P-256", OpenSSL 3.5's "?*X25519 /
 * ?secp256r1", "-ffdhe2048" removes one), each checked by name: the
 * configured strings, since an SSL_CTX tells no group list back.
 */

static char *
ngx_http_keystore_check_group_list(ngx_conf_t *cf,
    ngx_http_keystore_srv_conf_t *kscf, ngx_str_t *list, const char *what)
{
    u_char     *p, *last, *start;
    ngx_str_t   name;
    u_char      buf[64];

    p = list->data;
    last = list->data + list->len;

    while (p < last) {

        while (p < last && (*p == ':' || *p == '/' || *p == ' ')) {
            p++;
        }

        start = p;

        while (p < last && *p != ':' && *p != '/' && *p != ' ') {
            p++;
        }

        if (p == start) {
            break;
        }

        name.data = start;
        name.len = p - start;

        if (name.data[0] == '-') {
            continue;           /* removed from the list: never offered */
        }

        while (name.len && (name.data[0] == '?' || name.data[0] == '*')) {
            name.data++;
            name.len--;
        }

        if (name.len && name.len < sizeof(buf)) {
            ngx_cpystrn(buf, name.data, name.len + 1);

            if (ngx_http_keystore_group_covered((char *) buf)) {
                continue;
            }
        }

        return ngx_http_keystore_refuse(cf, kscf, what, &name,
                   "use \"ssl_ecdh_curve X25519MLKEM768:X25519:prime256v1:"
                   "X448:secp384r1:secp521r1\" or a part of it");
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_keystore_check_groups(ngx_conf_t *cf, ngx_http_ssl_srv_conf_t *sscf,
    ngx_http_keystore_srv_conf_t *kscf)
{
    char          *rv;
    ngx_uint_t     i, commands;
    ngx_keyval_t  *kv;

    commands = ngx_http_keystore_has_command(sscf, "Groups")
               || ngx_http_keystore_has_command(sscf, "Curves");

    if (ngx_strcmp(sscf->ecdh_curve.data, "auto") == 0) {

        if (!commands
            && SSL_CTX_set1_groups_list(sscf->ssl.ctx,
                                        NGX_HTTP_KEYSTORE_GROUPS) == 0)
        {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "SSL_CTX_set1_groups_list(\"%s\") failed",
                          NGX_HTTP_KEYSTORE_GROUPS);
            return NGX_CONF_ERROR;
        }

    } else {
        rv = ngx_http_keystore_check_group_list(cf, kscf, &sscf->ecdh_curve,
                 "the keystore does not implement the key exchange group");
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    if (!commands) {
        return NGX_CONF_OK;
    }

    kv = sscf->conf_commands->elts;

    for (i = 0; i < sscf->conf_commands->nelts; i++) {
        if (ngx_strcasecmp(kv[i].key.data, (u_char *) "Groups") != 0
            && ngx_strcasecmp(kv[i].key.data, (u_char *) "Curves") != 0)
        {
            continue;
        }

        rv = ngx_http_keystore_check_group_list(cf, kscf, &kv[i].value,
                 "the keystore does not implement the key exchange group");
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    return NGX_CONF_OK;
}


static ngx_uint_t
ngx_http_keystore_has_command(ngx_http_ssl_srv_conf_t *sscf, const char *name)
{
    ngx_uint_t    i;
    ngx_keyval_t  *kv;

    if (sscf->conf_commands == NULL) {
        return 0;
    }

    kv = sscf->conf_commands->elts;

    for (i = 0; i < sscf->conf_commands->nelts; i++) {
        if (ngx_strcasecmp(kv[i].key.data, (u_char *) name) == 0) {
            return 1;
        }
    }

    return 0;
}


/* HTTP/3 takes its secrets from the keylog callback and runs its own
 * crypto: no QUIC listener may serve a "keystore on" server */

char *
ngx_http_keystore_check_listens(ngx_conf_t *cf)
{
#if (NGX_HTTP_V3)
    ngx_uint_t                     p, a, s;
    ngx_http_conf_addr_t          *addr;
    ngx_http_conf_port_t          *port;
    ngx_http_core_srv_conf_t     **cscfp;
    ngx_http_core_main_conf_t     *cmcf;
    ngx_http_keystore_srv_conf_t  *kscf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    if (cmcf->ports == NULL) {
        return NGX_CONF_OK;
    }

    port = cmcf->ports->elts;

    for (p = 0; p < cmcf->ports->nelts; p++) {
        addr = port[p].addrs.elts;

        for (a = 0; a < port[p].addrs.nelts; a++) {
            if (!addr[a].opt.quic) {
                continue;
            }

            cscfp = addr[a].servers.elts;

            for (s = 0; s < addr[a].servers.nelts; s++) {
                kscf = cscfp[s]->ctx->srv_conf[ngx_http_keystore_module.ctx_index];

                if (kscf->enable == 1) {
                    return ngx_http_keystore_refuse(cf, kscf,
                               "HTTP/3 takes the TLS secrets out of OpenSSL",
                               &addr[a].opt.addr_text,
                               "remove \"quic\" from this server's "
                               "\"listen\"");
                }
            }
        }
    }
#endif

    return NGX_CONF_OK;
}


/* PCRE's JIT writes code at run time into W+X memory, which the lockdown
 * refuses (new code could hold a WRPKRU the inspector never saw) */

ngx_int_t
ngx_http_keystore_check_pcre_jit(ngx_cycle_t *cycle)
{
#if (NGX_PCRE)
    ngx_flag_t  *pcre_jit;

    /* the first field of ngx_regex.c's private ngx_regex_conf_t */
    pcre_jit = (ngx_flag_t *) ngx_get_conf(cycle->conf_ctx, ngx_regex_module);

    if (pcre_jit && *pcre_jit == 1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"keystore on\" cannot lock down workers with "
                      "\"pcre_jit on\" (JIT code is written at run time); "
                      "set \"pcre_jit off\"");
        return NGX_ERROR;
    }
#endif

    return NGX_OK;
}


/* root workers could open /proc/self/mem even when not dumpable */

ngx_int_t
ngx_http_keystore_check_user(ngx_cycle_t *cycle)
{
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (geteuid() == 0 && ccf->user == 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"keystore on\" cannot protect keys in workers that "
                      "run as root; name an unprivileged account in "
                      "\"user\"");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static char *
ngx_http_keystore_refuse(ngx_conf_t *cf, ngx_http_keystore_srv_conf_t *kscf,
    const char *what, ngx_str_t *arg, const char *fix)
{
    if (arg) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"keystore on\" (%s:%ui): %s \"%V\"; %s, "
                      "or set \"keystore off\"",
                      kscf->file, kscf->line, what, arg, fix);

    } else {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"keystore on\" (%s:%ui): %s; %s, "
                      "or set \"keystore off\"",
                      kscf->file, kscf->line, what, fix);
    }

    return NGX_CONF_ERROR;
}
