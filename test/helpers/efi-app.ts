/**
 * The removable-media boot program of a test node's disk (\EFI\BOOT\BOOTX64.EFI or
 * BOOTAA64.EFI): a PE32+ EFI application of one section whose code prints a marker with
 * ConOut->OutputString and powers off with RuntimeServices->ResetSystem(EfiResetShutdown),
 * so QEMU exits by itself. The code is position-independent (PC-relative), so the image
 * needs no relocations and runs wherever the firmware loads it.
 *
 * Offsets used: EFI_SYSTEM_TABLE ConOut 0x40, RuntimeServices 0x58;
 * EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL OutputString 0x08; EFI_RUNTIME_SERVICES ResetSystem 0x68.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export type EfiArch = 'x64' | 'aa64';

/** Where the message starts in the code section (both code sequences are padded to it). */
const MESSAGE_AT = 0x40;

function x64Code(): number[] {
  const lea = MESSAGE_AT - 0x12; // rip-relative: from the end of the lea (offset 0x12)
  return [
    ...[0x48, 0x83, 0xec, 0x28], //             sub rsp, 0x28             ; shadow space, 16-byte aligned
    ...[0x48, 0x89, 0xd3], //                   mov rbx, rdx              ; SystemTable
    ...[0x48, 0x8b, 0x4a, 0x40], //             mov rcx, [rdx+0x40]       ; SystemTable->ConOut
    ...[0x48, 0x8d, 0x15, lea, 0, 0, 0], //     lea rdx, [rip+lea]        ; the message
    ...[0xff, 0x51, 0x08], //                   call [rcx+0x08]           ; ConOut->OutputString
    ...[0x48, 0x8b, 0x43, 0x58], //             mov rax, [rbx+0x58]       ; SystemTable->RuntimeServices
    ...[0xb9, 0x02, 0, 0, 0], //                mov ecx, 2                ; EfiResetShutdown
    ...[0x31, 0xd2], //                         xor edx, edx              ; EFI_SUCCESS
    ...[0x45, 0x31, 0xc0], //                   xor r8d, r8d              ; no reset data
    ...[0x45, 0x31, 0xc9], //                   xor r9d, r9d
    ...[0xff, 0x50, 0x68], //                   call [rax+0x68]           ; RuntimeServices->ResetSystem
    ...[0xeb, 0xfe], //                         jmp $
  ];
}

/** AArch64: x0 = ImageHandle, x1 = SystemTable on entry; the stack is 16-byte aligned. */
function aa64Code(): number[] {
  const words: number[] = [];
  const ldr = (rt: number, rn: number, offset: number) => 0xf9400000 | ((offset / 8) << 10) | (rn << 5) | rt;
  words.push(0xaa0103f3); //                     mov x19, x1               ; SystemTable (callee-saved)
  words.push(ldr(0, 1, 0x40)); //                ldr x0, [x1, #0x40]       ; ConOut
  const at = words.length * 4;
  const rel = MESSAGE_AT - at; //                adr x1, message
  words.push(0x10000000 | ((rel & 3) << 29) | (((rel >> 2) & 0x7ffff) << 5) | 1);
  words.push(ldr(2, 0, 0x08)); //                ldr x2, [x0, #0x08]       ; ConOut->OutputString
  words.push(0xd63f0040); //                     blr x2
  words.push(ldr(4, 19, 0x58)); //               ldr x4, [x19, #0x58]      ; RuntimeServices
  words.push(ldr(5, 4, 0x68)); //                ldr x5, [x4, #0x68]       ; ResetSystem
  words.push(0x52800040); //                     mov w0, #2                ; EfiResetShutdown
  words.push(0xd2800001); //                     mov x1, #0                ; EFI_SUCCESS
  words.push(0xd2800002); //                     mov x2, #0                ; no reset data
  words.push(0xd2800003); //                     mov x3, #0
  words.push(0xd63f00a0); //                     blr x5
  words.push(0x14000000); //                     b .
  const out: number[] = [];
  for (const w of words) out.push(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, (w >>> 24) & 0xff);
  return out;
}

/** The EFI application for `arch` that prints `message` (on a line of its own) and powers off. */
export function efiApp(arch: EfiArch, message: string): Buffer {
  const code = arch === 'x64' ? x64Code() : aa64Code();
  if (code.length > MESSAGE_AT)
    throw new Error(`the ${arch} code is ${code.length} bytes; the message is at ${MESSAGE_AT}`);
  const text = Buffer.from(`\r\n${message}\r\n\0`, 'utf16le');
  if (MESSAGE_AT + text.length > 0x200) throw new Error('the message does not fit the section');
  const img = Buffer.alloc(0x400);
  // DOS stub: "MZ" and e_lfanew.
  img.write('MZ', 0, 'latin1');
  img.writeUInt32LE(0x40, 0x3c);
  img.write('PE\0\0', 0x40, 'latin1');
  // COFF header.
  img.writeUInt16LE(arch === 'x64' ? 0x8664 : 0xaa64, 0x44); // Machine
  img.writeUInt16LE(1, 0x46); //          NumberOfSections
  img.writeUInt16LE(0xf0, 0x54); //       SizeOfOptionalHeader (PE32+, 16 data directories)
  img.writeUInt16LE(0x0022, 0x56); //     Characteristics: EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE
  // Optional header (PE32+).
  const o = 0x58;
  img.writeUInt16LE(0x20b, o); //         Magic: PE32+
  img.writeUInt32LE(0x200, o + 4); //     SizeOfCode
  img.writeUInt32LE(0x1000, o + 16); //   AddressOfEntryPoint
  img.writeUInt32LE(0x1000, o + 20); //   BaseOfCode
  img.writeBigUInt64LE(0x400000n, o + 24); // ImageBase
  img.writeUInt32LE(0x1000, o + 32); //   SectionAlignment
  img.writeUInt32LE(0x200, o + 36); //    FileAlignment
  img.writeUInt32LE(0x2000, o + 56); //   SizeOfImage
  img.writeUInt32LE(0x200, o + 60); //    SizeOfHeaders
  img.writeUInt16LE(10, o + 68); //       Subsystem: EFI application
  img.writeUInt32LE(16, o + 108); //      NumberOfRvaAndSizes (all empty: no relocations needed)
  // Section table: .text, RVA 0x1000, file offset 0x200.
  const sh = o + 0xf0;
  img.write('.text', sh, 'latin1');
  img.writeUInt32LE(0x200, sh + 8); //    VirtualSize
  img.writeUInt32LE(0x1000, sh + 12); //  VirtualAddress
  img.writeUInt32LE(0x200, sh + 16); //   SizeOfRawData
  img.writeUInt32LE(0x200, sh + 20); //   PointerToRawData
  img.writeUInt32LE(0x60000020, sh + 36); // CODE | EXECUTE | READ
  Buffer.from(code).copy(img, 0x200);
  text.copy(img, 0x200 + MESSAGE_AT);
  return img;
}

/** A directory QEMU shows the guest as a FAT disk (vvfat) holding \EFI\BOOT\BOOT<ARCH>.EFI. */
export function espDir(dir: string, arch: EfiArch, message: string): string {
  const esp = path.join(dir, 'esp');
  mkdirSync(path.join(esp, 'EFI/BOOT'), { recursive: true });
  writeFileSync(path.join(esp, `EFI/BOOT/BOOT${arch.toUpperCase()}.EFI`), efiApp(arch, message));
  return esp;
}
