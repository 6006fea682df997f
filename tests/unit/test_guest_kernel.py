"""The guest kernel QEMU boots in the VM tests and `make run`: the ELF inside a bzImage
when it has a PVH entry (no slow decompression under TCG), else the bzImage as it is."""

from __future__ import annotations

import gzip
import lzma
import struct
from collections.abc import Callable

import pytest

from devstack.guest_images import _guest_kernel

SETUP_SECTORS = 1


def elf_with_notes(*notes: tuple[bytes, int]) -> bytes:
    """A 64-bit ELF whose one program header is a PT_NOTE holding `notes` (name, type)."""
    body = b"".join(
        struct.pack("<III", len(name), 4, kind) + name.ljust(-(-len(name) // 4) * 4, b"\0")
        + b"\0" * 4
        for name, kind in notes
    )  # fmt: skip
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", header, 0x20, 64)  # program headers right after this header
    struct.pack_into("<HH", header, 0x36, 56, 1)
    note_at = 64 + 56
    program_header = struct.pack("<IIQQQQQQ", 4, 0, note_at, 0, 0, len(body), len(body), 4)
    return bytes(header) + program_header + body


def bzimage(payload: bytes) -> bytes:
    """A bzImage shell around `payload`: the boot protocol 2.08 fields that locate it."""
    setup = bytearray((SETUP_SECTORS + 1) * 512)
    setup[0x1F1] = SETUP_SECTORS
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x20F)
    struct.pack_into("<II", setup, 0x248, 16, len(payload))
    return bytes(setup) + b"\0" * 16 + payload + b"\0" * 8


PVH = elf_with_notes((b"GNU\0", 3), (b"Xen\0", 18))


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress], ids=["gzip", "xz"])
def test_a_kernel_with_a_pvh_entry_is_booted_as_its_elf(
    compress: Callable[[bytes], bytes],
) -> None:
    assert _guest_kernel(bzimage(compress(PVH))) == PVH


@pytest.mark.parametrize(
    "image",
    [
        bzimage(gzip.compress(elf_with_notes((b"Xen\0", 17), (b"GNU\0", 18)))),  # no PVH note
        bzimage(b"\x1f\x8bnot gzip at all"),
        bzimage(b"BZh9 another compression"),
        b"\0" * 4096,  # no boot protocol header
    ],
    ids=["no-pvh-note", "broken-gzip", "unknown-compression", "not-a-bzimage"],
)
def test_any_other_kernel_is_kept_as_it_is(image: bytes) -> None:
    assert _guest_kernel(image) == image
