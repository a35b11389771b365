#!/usr/bin/env python3
"""Write the committed seed corpus of each harness (fuzz/corpus/<name>/).

    python3 fuzz/seeds.py        (re)writes fuzz/corpus/*/seed-*

Deterministic; the value seeds are authenticated with the fixed key of
fuzz/shim.c (byte i = i * 37 + 11), so the harness's decoder accepts them.
"""
import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_KEY = bytes((i * 37 + 11) & 0xFF for i in range(32))


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))
    for label, data in seeds:
        with open(os.path.join(d, "seed-" + label), "wb") as fh:
            fh.write(data)


def encode(digest, payload, isnull=False, created=1_700_000_000_000_000, compute=1234, ttl=300_000,
           key=SHIM_KEY):
    """Value format 2 of extension/value.c."""
    hdr = bytearray(64)
    hdr[0:4] = b"HCV\x02"
    hdr[4] = 1 if isnull else 0
    struct.pack_into("<I", hdr, 12, 0 if isnull else len(payload))
    struct.pack_into("<q", hdr, 16, created)
    struct.pack_into("<I", hdr, 24, compute)
    struct.pack_into("<I", hdr, 28, ttl)
    hdr[32:48] = digest
    body = b"" if isnull else payload
    mac = hmac.new(key, bytes(hdr[:48]) + body, hashlib.sha256).digest()[:16]
    hdr[48:64] = mac
    return bytes(hdr) + body


def value_seeds():
    d = bytes(range(16))
    fixed = bytes.fromhex("deadbeef00112233445566778899aabb")
    js = b'{"total" : 1, "items" : [{"id":1,"city":"Boston"}]}'
    raw = [
        ("raw-empty", b"\x00"),
        ("raw-short", b"\x00HCV\x02"),
        ("raw-v1-magic", b"\x00HCV\x01" + bytes(60)),
        ("raw-valid-claimed", b"\x00" + encode(d, js)),
        ("raw-valid-fixed", b"\x00" + encode(fixed, js)),
        ("raw-valid-null", b"\x00" + encode(fixed, b"", isnull=True)),
        ("raw-bad-flags", b"\x00" + encode(fixed, js)[:4] + b"\x02" + encode(fixed, js)[5:]),
        ("raw-len-mismatch", b"\x00" + encode(fixed, js) + b"x"),
        ("raw-redis-error", b"\x00-ERR wrong kind of value"),
        ("raw-garbage", b"\x00" + bytes((i * 7) & 0xFF for i in range(100))),
    ]
    rt = []
    for label, flags, payload in [
        ("rt-json", 0, js),
        ("rt-null", 1, b""),
        ("rt-secret", 2, js),
        ("rt-long-secret", 6, js),
        ("rt-empty", 0, b""),
        ("rt-binary", 0, bytes(range(256))),
    ]:
        body = bytes([flags])
        body += struct.pack("<q", 1_700_000_000_000_000) + struct.pack("<I", 99) + struct.pack("<I", 300_000)
        body += d + struct.pack("<I", 77) + bytes([5])
        if flags & 2:
            secret = b"s3cret-value"
            body += bytes([len(secret)])
            if flags & 4:
                body += bytes([100])    # total length 1000 + 100
            body += secret
        rt.append((label, b"\x01" + body + payload))
    return raw + rt


def etag_seeds():
    digest = bytes.fromhex("0123456789abcdef0011223344556677")
    hexd = digest.hex().encode()
    other = b"ffffffffffffffffffffffffffffffff"
    cases = [
        ("strong", b'"' + hexd + b'"'),
        ("weak", b'W/"' + hexd + b'"'),
        ("list", b'"' + other + b'", W/"' + hexd + b'"'),
        ("list-tabs", b'\t"x" ,\t"' + hexd + b'"  '),
        ("empty-elems", b',, ,"' + hexd + b'",'),
        ("star", b"*"),
        ("unterminated", b'"' + hexd),
        ("prefix", b'"' + hexd[:31] + b'"'),
        ("longer", b'"' + hexd + b'0"'),
        ("no-quotes", hexd),
        ("key-prefix", b'"hc:' + hexd + b'"'),
        ("adjacent", b'"a""' + hexd + b'"'),
        ("junk-then", b'foo, "' + hexd + b'"'),
        ("empty", b""),
    ]
    return [(k, digest + v) for k, v in cases]


def template_seeds():
    cases = [
        ("table", 0, b"housing.listings"),
        ("param", 1, b"housing.listings/city=$1"),
        ("param-6", 6, b"housing.listings/city=$6"),
        ("param-out", 1, b"housing.listings/city=$2"),
        ("param-zero", 1, b"housing.listings/city=$0"),
        ("param-huge", 3, b"housing.listings/id=$99999999999999999999"),
        ("param-empty", 1, b"housing.listings/city=$"),
        ("param-space", 1, b"housing.listings/city=$ 1"),
        ("literal", 0, b"housing.listings/city=Boston"),
        ("literal-empty", 0, b"housing.listings/city="),
        ("no-column", 0, b"housing.listings/=x"),
        ("no-eq", 0, b"housing.listings/city"),
        ("leading-slash", 0, b"/city=x"),
        ("two-slashes", 1, b"a/b/c=$1"),
        ("two-eq", 0, b"a/b=c=d"),
        ("empty", 0, b""),
        ("quotes", 0, b'sch"ema.t/c=\'); DROP TABLE housing.listings; --'),
        # then a NUL and the parameter's text
        ("param-value", 1, b"housing.listings/city=$1\x00Boston"),
        ("param-empty-value", 1, b"housing.listings/city=$1\x00"),
        ("param-long-value", 2, b"housing.listings/city=$2\x00" + b"v" * 300),
        ("literal-value", 1, b"housing.listings/id=42\x00ignored"),
    ]
    return [(k, bytes([n]) + v) for k, n, v in cases]


def key_seeds():
    def comp(b):
        return bytes([len(b)]) + b

    null = b"\xff"
    return [
        ("split", b"\x00\x10" + comp(b"ab") + comp(b"c")),
        ("moved", b"\x00\x08" + comp(b"a") + comp(b"bc")),
        ("null-vs-empty", b"\x03\x00" + null + comp(b"")),
        ("two-lists", b"\x08\x00" + comp(b"x") + null + b"\xfe" + comp(b"x") + comp(b"")),
        ("prefix", b"\xf1\x00" + b"hc:" + b"p" * 100 + comp(b"abc")),
        ("ints", b"\x05\x01" + comp(struct.pack("<i", -1)) + comp(struct.pack("<q", 42))),
    ]


def message_seeds():
    return [
        ("table", b"\x01housing.listings"),
        ("rows", b"\x41housing.listings\x00housing.listings/city=Boston\x00housing.listings/id=42"),
        ("quotes", b'\x81housing.listings/city=Bo"st\\on\x00housing.listings/city=\n\t\x01'),
        ("truncated", b"\x03a/x=1\x00a/x=2\x00a/x=3\x00a"),
        ("dup-after-limit", b"\x03a/x=1\x00a/x=1"),
        ("abort", b"\x11housing.listings/id=1"),
        ("precommit-abort", b"\x21housing.listings/id=1"),
        ("nopublish", b"\x00t\x00t/c=1"),
        ("null-marker", b"\x01t/c=\\N"),
        ("utf8", "\x01housing.listings/city=São Paulo\x00t/c=\u2028".encode()),
        ("bad-utf8", b"\x01t/c=\xc3\x28\x00t/c=\xed\xa0\x80"),
        ("late-tag", b"\x01t/c=1\x00\x01t/c=2\x00\x01u"),
        ("only-late", b"\x01\x01t/c=1"),
        ("late-abort", b"\x21t/c=1\x00\x01t/c=2"),
        ("prepare", b"\x31housing.listings/id=7"),
        ("prepare-nothing", b"\x31"),
    ]


def main():
    write("value", value_seeds())
    write("etag", etag_seeds())
    write("template", template_seeds())
    write("key", key_seeds())
    write("message", message_seeds())


if __name__ == "__main__":
    main()
