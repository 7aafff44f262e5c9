/*
 * tls/tls_cert: certificates. For now, the development certificate that
 * `kith init` writes: a self-signed ECDSA P-256 certificate for localhost,
 * 127.0.0.1 and ::1, made with mbedtls (no openssl CLI needed).
 */
#ifndef KITH_TLS_CERT_H
#define KITH_TLS_CERT_H

/* Writes key_path (SEC1 "EC PRIVATE KEY" PEM, mode 0600) and cert_path (PEM)
 * valid for `days` days from yesterday. 0 or KITH_E* with a diagnostic. */
int tls_cert_dev_generate(const char *cert_path, const char *key_path, int days);

#endif
