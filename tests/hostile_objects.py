"""Hand-made eBPF ELF objects for the attack tests: a minimal ELF64 writer (null section,
.text, .shstrtab), so an object can carry what clang never emits: 130k self-jumps, or a
compressed .text that inflates to 32 MiB."""

from __future__ import annotations

import struct
import zlib

EM_BPF = 247
SHT_PROGBITS, SHT_STRTAB = 1, 3
SHF_ALLOC, SHF_EXECINSTR, SHF_COMPRESSED = 0x2, 0x4, 0x800
ELFCOMPRESS_ZLIB = 1

JEQ_SELF = struct.pack("<BBhi", 0x15, 0x00, -1, 0)  # if r0 == 0 goto self
EXIT = struct.pack("<BBhi", 0x95, 0, 0, 0)
MOV_R0_0 = struct.pack("<BBhi", 0xB7, 0, 0, 0)


def elf_object(text: bytes, *, compressed_size: int | None = None) -> bytes:
    """An ELF64 little-endian eBPF relocatable object whose .text is `text`; with
    `compressed_size`, .text is SHF_COMPRESSED: a zlib stream of that many zero bytes (after
    an Elf64_Chdr claiming it), and `text` is ignored."""
    flags = SHF_ALLOC | SHF_EXECINSTR
    if compressed_size is not None:
        text = struct.pack("<IIQQ", ELFCOMPRESS_ZLIB, 0, compressed_size, 8) + \
            zlib.compress(bytes(compressed_size), 9)
        flags |= SHF_COMPRESSED
    shstrtab = b"\0.text\0.shstrtab\0"
    text_off = 64
    strtab_off = text_off + len(text)
    shoff = (strtab_off + len(shstrtab) + 7) & ~7
    header = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, 1, EM_BPF, 1, 0, 0, shoff, 0,
                         64, 0, 0, 64, 3, 2)

    def section(name: int, kind: int, sflags: int, offset: int, size: int, align: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name, kind, sflags, 0, offset, size, 0, 0, align, 0)

    body = header + text + shstrtab
    body += bytes(shoff - len(body))
    body += bytes(64)  # the null section
    body += section(1, SHT_PROGBITS, flags, text_off, len(text), 8)
    body += section(7, SHT_STRTAB, 0, strtab_off, len(shstrtab), 1)
    return body


def self_jumps(count: int) -> bytes:
    """`count` conditional jumps to themselves, then `r0 = 0; exit`: one back edge each."""
    return elf_object(JEQ_SELF * count + MOV_R0_0 + EXIT)


def compressed_bomb(inflated: int = 32 << 20) -> bytes:
    return elf_object(b"", compressed_size=inflated)
