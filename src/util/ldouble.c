/*
 * INCRBYFLOAT and HINCRBYFLOAT arithmetic in the platform's C `long double`
 * (80-bit x87 extended on x86-64 Linux, IEEE quad on aarch64 Linux), parsed
 * with strtold and printed with "%.17Lf", because that is how Redis computes
 * and formats these values: 0.1 + 0.2 is "0.3" there, not the double
 * 0.30000000000000004. Only this file touches long double; Rust sees bytes.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LD_MAX_CHARS (5 * 1024)

/* Parses exactly `len` bytes as a long double with Redis's acceptance rules:
 * no leading space, no trailing garbage, no NaN, no overflow or underflow to
 * zero. Returns 1 on success. */
static int parse_ld(const char *s, size_t len, long double *out) {
    char buf[LD_MAX_CHARS];
    char *end = NULL;
    long double v;

    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (isspace((unsigned char)buf[0])) return 0;
    errno = 0;
    v = strtold(buf, &end);
    if (end == NULL || *end != '\0' || (size_t)(end - buf) != len) return 0;
    if (errno == EINVAL) return 0;
    if (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO))
        return 0;
    if (isnan(v)) return 0;
    *out = v;
    return 1;
}

/* current (NULL = missing key, counts as 0) + incr, written to `out` in
 * Redis's human form ("%.17Lf" without trailing zeros, "-0" as "0").
 * Returns the length written, or -1 if `current` is not a float, -2 if
 * `incr` is not a float, -3 if the sum is NaN or infinite, -4 if `out` is
 * too small. */
long cinnabar_ld_incr(const char *current, size_t current_len,
                      const char *incr, size_t incr_len,
                      char *out, size_t out_len) {
    long double a = 0, b = 0;
    int n;

    if (current != NULL && !parse_ld(current, current_len, &a)) return -1;
    if (!parse_ld(incr, incr_len, &b)) return -2;
    a += b;
    if (isnan(a) || isinf(a)) return -3;
    n = snprintf(out, out_len, "%.17Lf", a);
    if (n < 0 || (size_t)n + 1 > out_len) return -4;
    if (strchr(out, '.') != NULL) {
        while (n > 0 && out[n - 1] == '0') n--;
        if (n > 0 && out[n - 1] == '.') n--;
    }
    if (n == 2 && out[0] == '-' && out[1] == '0') {
        out[0] = '0';
        n = 1;
    }
    out[n] = '\0';
    return n;
}

/* Whether `s` parses as a long double (Redis's rules): -1 if not, 1 if it
 * is infinite, 0 if finite. */
int cinnabar_ld_classify(const char *s, size_t len) {
    long double v;
    if (!parse_ld(s, len, &v)) return -1;
    return isinf(v) ? 1 : 0;
}

/* A blocking command's timeout in seconds, as Redis's
 * getTimeoutFromObjectOrReply reads it: the long double times 1000,
 * rounded up, cast to long long. Redis leaves an out-of-range cast to the
 * hardware, which on x86-64 gives LLONG_MIN (so `+inf` is "negative"); it
 * is spelled out here rather than left undefined. Returns 0 if `s` is not
 * a float, else 1 with the milliseconds in *ms. */
int cinnabar_ld_timeout_ms(const char *s, size_t len, long long *ms) {
    long double v;
    if (!parse_ld(s, len, &v)) return 0;
    v = ceill(v * 1000.0L);
    if (isnan(v) || v >= 9223372036854775808.0L || v < -9223372036854775808.0L)
        *ms = (-9223372036854775807LL - 1);
    else
        *ms = (long long)v;
    return 1;
}
