#include "tls/tls_cert.h"

#include "base/err.h"
#include "base/rand.h"
#include "base/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int write_file(const char *path, const unsigned char *data, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return err_set(err_from_errno(errno), "%s: %s", path, strerror(errno));
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            return err_set(err_from_errno(e), "%s: %s", path, strerror(e));
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) return err_set(KITH_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

/* subjectAltName: DNS localhost, IP 127.0.0.1, IP ::1 (DER, written backwards). */
static int san_der(unsigned char *buf, size_t cap, unsigned char **start)
{
    static const unsigned char v4[4] = {127, 0, 0, 1};
    static const unsigned char v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    unsigned char *p = buf + cap;
    size_t len = 0;
    int r;
#define W(expr)                                                                                    \
    do {                                                                                           \
        if ((r = (expr)) < 0) return r;                                                            \
        len += (size_t)r;                                                                          \
    } while (0)
    size_t l0 = len;
    W(mbedtls_asn1_write_raw_buffer(&p, buf, v6, sizeof v6));
    W(mbedtls_asn1_write_len(&p, buf, len - l0));
    W(mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7));
    l0 = len;
    W(mbedtls_asn1_write_raw_buffer(&p, buf, v4, sizeof v4));
    W(mbedtls_asn1_write_len(&p, buf, len - l0));
    W(mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7));
    l0 = len;
    W(mbedtls_asn1_write_raw_buffer(&p, buf, (const unsigned char *)"localhost", 9));
    W(mbedtls_asn1_write_len(&p, buf, len - l0));
    W(mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2));
    W(mbedtls_asn1_write_len(&p, buf, len));
    W(mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
#undef W
    *start = p;
    return (int)len;
}

/* extKeyUsage: serverAuth. */
static int eku_der(unsigned char *buf, size_t cap, unsigned char **start)
{
    unsigned char *p = buf + cap;
    int r, len = 0;
    if ((r = mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH,
                                    MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH))) < 0)
        return r;
    len += r;
    if ((r = mbedtls_asn1_write_len(&p, buf, (size_t)len)) < 0) return r;
    len += r;
    if ((r = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) < 0)
        return r;
    len += r;
    *start = p;
    return len;
}

static int entropy_from_kernel(void *ctx, unsigned char *out, size_t n)
{
    (void)ctx;
    rand_bytes(out, n);
    return 0;
}

int tls_cert_dev_generate(const char *cert_path, const char *key_path, int days)
{
    mbedtls_pk_context key;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509write_cert crt;
    mbedtls_mpi serial;
    mbedtls_pk_init(&key);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_x509write_crt_init(&crt);
    mbedtls_mpi_init(&serial);
    unsigned char pem[4096], der[256], *start;
    const char *step = "seeding the generator";
    int r = mbedtls_ctr_drbg_seed(&drbg, entropy_from_kernel, NULL,
                                  (const unsigned char *)"kith-devcert", 12);
    if (r == 0) {
        step = "generating the key";
        r = mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    }
    if (r == 0)
        r = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key),
                                mbedtls_ctr_drbg_random, &drbg);
    if (r == 0) {
        step = "building the certificate";
        unsigned char sn[16];
        rand_bytes(sn, sizeof sn);
        sn[0] &= 0x7f; /* a positive serial */
        r = mbedtls_mpi_read_binary(&serial, sn, sizeof sn);
    }
    char nb[16], na[16];
    int64_t now = time_now_us() / 1000000;
    time_t t0 = (time_t)(now - 86400), t1 = (time_t)(now + (int64_t)days * 86400);
    struct tm tm0, tm1;
    gmtime_r(&t0, &tm0);
    gmtime_r(&t1, &tm1);
    strftime(nb, sizeof nb, "%Y%m%d%H%M%S", &tm0);
    strftime(na, sizeof na, "%Y%m%d%H%M%S", &tm1);
    if (r == 0) {
        mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
        mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
        mbedtls_x509write_crt_set_subject_key(&crt, &key);
        mbedtls_x509write_crt_set_issuer_key(&crt, &key);
        r = mbedtls_x509write_crt_set_serial(&crt, &serial);
    }
    if (r == 0) r = mbedtls_x509write_crt_set_validity(&crt, nb, na);
    if (r == 0) r = mbedtls_x509write_crt_set_subject_name(&crt, "CN=localhost,O=Kith development");
    if (r == 0) r = mbedtls_x509write_crt_set_issuer_name(&crt, "CN=localhost,O=Kith development");
    /* Like `openssl req -x509`: its own trust anchor (CA, path length 0), so
     * clients can pin it with --cacert / cafile. */
    if (r == 0) r = mbedtls_x509write_crt_set_basic_constraints(&crt, 1, 0);
    if (r == 0) r = mbedtls_x509write_crt_set_subject_key_identifier(&crt);
    if (r == 0) r = mbedtls_x509write_crt_set_authority_key_identifier(&crt);
    if (r == 0)
        r = mbedtls_x509write_crt_set_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE |
                                                          MBEDTLS_X509_KU_KEY_CERT_SIGN);
    int n = 0;
    if (r == 0 && (n = san_der(der, sizeof der, &start)) < 0) r = n;
    if (r == 0)
        r = mbedtls_x509write_crt_set_extension(&crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0,
                                                start, (size_t)n);
    if (r == 0 && (n = eku_der(der, sizeof der, &start)) < 0) r = n;
    if (r == 0)
        r = mbedtls_x509write_crt_set_extension(&crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0,
                                                start, (size_t)n);
    int rc = 0;
    if (r == 0) {
        step = "writing the key";
        r = mbedtls_pk_write_key_pem(&key, pem, sizeof pem);
        if (r == 0) rc = write_file(key_path, pem, strlen((char *)pem), 0600);
    }
    if (r == 0 && rc == 0) {
        step = "writing the certificate";
        r = mbedtls_x509write_crt_pem(&crt, pem, sizeof pem, mbedtls_ctr_drbg_random, &drbg);
        if (r == 0) rc = write_file(cert_path, pem, strlen((char *)pem), 0644);
    }
    if (r != 0)
        rc = err_set(KITH_EINTERNAL, "development certificate: %s: mbedtls error -0x%04x", step,
                     (unsigned)-r);
    mbedtls_mpi_free(&serial);
    mbedtls_x509write_crt_free(&crt);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_pk_free(&key);
    memset(pem, 0, sizeof pem);
    return rc;
}
