"""RSP framing's byte loops in C (written by hand for km; cffi API mode): a reply's run-length encoding, checksum
and `$...#cs` frame in one pass, and the byte sum of a received packet.

Why: a 32 KiB `m` reply is a 64 KiB hex body, whose run scan and checksum cost ~200 us in Python (zlib and
big-integer tricks included) and ~30 us here. Short replies gain too as soon as they hold a run: a stop reply
(`T05...06:70e5ffffff7f0000;...`) or a 64-byte `m` of the stack costs ~9 us in Python and ~1 us here, twice per
stop; only the shortest (`OK`, `E01`: ~0.4 us in Python, and cached) are framed in Python, so packets.py frames in
C from FRAME_THRESHOLD bytes on (and sums in C only past its zlib chunk). The pure-Python twin stays in packets.py
(encode_python, checksum) and is what runs when this module cannot be loaded; tests/unit/test_rsp_cframing.py
holds the two to the same output byte for byte.

The compiled module is made by tools/install.sh (`python3 -m kdbg.rsp.cframing`) or by the first stub start that
misses it, in the user's cache (~/.cache/km; its name carries a hash of the source, cffi's and Python's version,
so an edit never loads a stale one). Without a C compiler or Python's headers the attempt is remembered (a
`.failed` marker) and the stub frames in Python.
"""
from __future__ import annotations

from typing import Any

from kdbg.cmodule import CModule

FRAME_THRESHOLD = 16        # bodies at least this long are framed in C (~0.8 us a call); below, Python is faster

CDEF = """
size_t km_rsp_frame(const unsigned char *body, size_t n, unsigned char *out);
unsigned int km_rsp_sum(const unsigned char *data, size_t n);
"""

# The rules are packets.encode_rle's, so that both give the same frame: runs of 4+ equal bytes become `x*N`
# (N - 29 more repeats, at most 97 per mark, never a count of '$' or '#'); a body over 512 bytes is searched for
# runs only when it holds "0000", four NULs or an escape, and one holding an escape or a NUL (binary) encodes only
# runs of 16+.
SOURCE = r"""
#include <stddef.h>
#include <string.h>

#define SCAN_LIMIT 512
#define MAX_REPEAT 97

static int has4(const unsigned char *p, size_t n, unsigned char c)
{
    const unsigned char *end = p + n;
    while (p + 4 <= end) {
        const unsigned char *q = memchr(p, c, (size_t)(end - p) - 3);
        if (q == NULL)
            return 0;
        if (q[1] == c && q[2] == c && q[3] == c)
            return 1;
        p = q + 1;
    }
    return 0;
}

unsigned int km_rsp_sum(const unsigned char *data, size_t n)
{
    unsigned int sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += data[i];
    return sum & 0xFF;
}

/* `$<body, run-length encoded>#cs` into out (at least n + 4 bytes: encoding never lengthens a body);
   returns the frame's length. */
size_t km_rsp_frame(const unsigned char *body, size_t n, unsigned char *out)
{
    unsigned char *o = out + 1;
    size_t min_repeats = 3;
    int rle = n >= 4;
    out[0] = '$';
    if (rle && n > SCAN_LIMIT) {
        int escape = memchr(body, '}', n) != NULL;
        if (!escape && !has4(body, n, '0') && !has4(body, n, 0))
            rle = 0;
        else if (escape || memchr(body, 0, n) != NULL)
            min_repeats = 15;
    }
    if (!rle) {
        memcpy(o, body, n);
        o += n;
    } else {
        size_t i = 0, literal = 0;          /* body[literal:i] is still to be copied as it is */
        while (i + 1 < n) {
            unsigned char b = body[i];
            if (body[i + 1] != b) {
                i++;
                continue;
            }
            size_t j = i + 2;
            while (j < n && body[j] == b)
                j++;
            size_t repeats = j - i - 1;
            if (repeats >= min_repeats) {
                memcpy(o, body + literal, i + 1 - literal);     /* up to and with the run's first byte */
                o += i + 1 - literal;
                size_t full = repeats / (MAX_REPEAT + 1), remaining = repeats % (MAX_REPEAT + 1);
                for (size_t k = 0; k < full; k++) {
                    *o++ = '*';
                    *o++ = MAX_REPEAT + 29;
                    *o++ = b;
                }
                while (remaining > 0) {
                    size_t count = remaining < MAX_REPEAT ? remaining : MAX_REPEAT;
                    while (count >= 3 && (count + 29 == '$' || count + 29 == '#'))
                        count--;
                    if (count >= 3) {
                        *o++ = '*';
                        *o++ = (unsigned char)(count + 29);
                        remaining -= count;
                    }
                    if (remaining > 0) {
                        *o++ = b;
                        remaining--;
                    }
                }
                literal = j;
            }
            i = j;
        }
        memcpy(o, body + literal, n - literal);
        o += n - literal;
    }
    unsigned int sum = km_rsp_sum(out + 1, (size_t)(o - out - 1));
    static const char digits[] = "0123456789abcdef";
    *o++ = '#';
    *o++ = (unsigned char)digits[sum >> 4];
    *o++ = (unsigned char)digits[sum & 15];
    return (size_t)(o - out);
}
"""


COMPILED = CModule("_km_rspframe_", CDEF, SOURCE, compile_args=("-O3",))


def load(*, build_missing: bool = True) -> tuple[Any, Any] | None:
    """The compiled module's (ffi, lib), or None: built first when missing (and not known to fail here)."""
    return COMPILED.load(build_missing=build_missing)


if __name__ == "__main__":      # tools/install.sh
    COMPILED.install("kdbg.rsp.cframing", "the stub frames in Python")
