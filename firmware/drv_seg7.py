"""The 7-segment font shared by the MAX7219 and TM1637 drivers: an ASCII text as segment bytes
(bit 0 = a ... bit 6 = g, bit 7 = the decimal point, as the TM1637 takes them; drv_max7219 reorders
them for its chip). Nothing here touches hardware. Letters a 7-segment digit cannot show (K, M, V,
W, X) and anything not ASCII (the 番 of "5番窓口") are left out: a resident reads the digits."""


def segments(text, width):
    """`text` as `width` segment bytes, right-aligned (a ticket "A-023" in 5 digits); a "." lights
    the point of the digit before it; non-ASCII characters are dropped; cut on the left if too
    long (the end of a ticket number is the part that differs)."""
    # Segment bytes for chars 0x20..0x5F (lower case folded to upper case first): one bytes
    # object, and a local, not a module name (every name is interned heap on a board).
    font = (
        b"\x00\x00\x22\x00\x00\x00\x00\x02\x39\x0f\x00\x00\x00\x40\x80\x52"  #  !"#$%&'()*+,-./
        b"\x3f\x06\x5b\x4f\x66\x6d\x7d\x07\x7f\x6f\x00\x00\x00\x48\x00\x53"  # 0123456789:;<=>?
        b"\x00\x77\x7c\x39\x5e\x79\x71\x3d\x76\x30\x1e\x00\x38\x00\x54\x3f"  # @ABCDEFGHIJKLMNO
        b"\x73\x67\x50\x6d\x78\x3e\x00\x00\x00\x6e\x5b\x39\x00\x0f\x00\x08"  # PQRSTUVWXYZ[\]^_
    )
    out = bytearray()
    # Bytes, not characters: iterating a str interns every character on a board.
    for c in text.encode():
        if c == 0x2E and out:  # "."
            out[-1] |= 0x80
        elif c < 0x80:
            if 0x61 <= c <= 0x7A:
                c -= 0x20
            out.append(font[c - 0x20] if 0x20 <= c < 0x60 else 0)
    if len(out) >= width:
        return out[len(out) - width :]
    return bytearray(width - len(out)) + out
