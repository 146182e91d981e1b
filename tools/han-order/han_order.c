/* Writes the CJK unified ideographs (Unicode_Ideograph, as known to the linked
 * libicu) in the order of libicu's root collator, CouchDB's ucol_open("").
 * Output: 3 bytes big-endian per code point, to stdout.
 * Build: gcc -O2 -o han_order han_order.c $(pkg-config --cflags --libs icu-uc icu-i18n) */
#include <unicode/ucol.h>
#include <unicode/uchar.h>
#include <unicode/uiter.h>
#include <stdio.h>
#include <stdlib.h>

static UCollator *coll;

static int by_collation(const void *a, const void *b) {
    UChar32 x = *(const UChar32 *)a, y = *(const UChar32 *)b;
    UChar bx[2], by[2];
    int32_t nx = 0, ny = 0;
    U16_APPEND_UNSAFE(bx, nx, x);
    U16_APPEND_UNSAFE(by, ny, y);
    UErrorCode status = U_ZERO_ERROR;
    int r = ucol_strcoll(coll, bx, nx, by, ny);
    (void)status;
    return r != 0 ? r : (x > y) - (x < y);
}

int main(void) {
    UErrorCode status = U_ZERO_ERROR;
    coll = ucol_open("", &status);
    if (U_FAILURE(status)) return 1;
    UChar32 *cps = malloc(sizeof(UChar32) * 0x110000);
    size_t n = 0;
    for (UChar32 c = 0; c < 0x110000; c++)
        if (u_hasBinaryProperty(c, UCHAR_UNIFIED_IDEOGRAPH)) cps[n++] = c;
    qsort(cps, n, sizeof(UChar32), by_collation);
    for (size_t i = 0; i < n; i++) {
        putchar((cps[i] >> 16) & 0xff);
        putchar((cps[i] >> 8) & 0xff);
        putchar(cps[i] & 0xff);
    }
    fprintf(stderr, "%zu ideographs, ICU %s\n", n, U_ICU_VERSION);
    return 0;
}
