"""Checks that the per-level kernel objects keep their instruction sets to themselves.

cpp/dispatch/kernels.cpp is compiled once per instruction-set level. Only the functions of the
level's namespace (latentmf::avx2::..., latentmf::avx512::..., and whatever names them, such as a
std::sort instantiated with one of their lambdas) may use that level's instructions. Everything
else in those objects (std::vector members, the checks, the error helpers) is also compiled into
the other objects, and the linker keeps any one of the copies: if the copy it kept had AVX2 or
AVX-512 instructions, a CPU without them would crash in code that runs at every level.

For x86-64 ELF objects, disassembled with objdump, this asserts:

- the generic object has no VEX or EVEX encoded instruction (AVX, AVX2, FMA, AVX-512) at all;
- in the avx2 and avx512 objects, functions outside the level's namespace have none either,
  and use none of a few other post-baseline instructions (popcnt, lzcnt, movbe, SSE4);
- the avx2 object has no EVEX instruction, and its kernels do use 256-bit registers and FMA;
- the avx512 object's kernels do use 512-bit registers;

so a change to kernels.cpp that lets a target region swallow a shared header, or a compiler whose
target pragma does nothing, fails the build instead of shipping.

    python check_isa_objects.py --objdump objdump generic=generic.o avx2=avx2.o avx512=avx512.o
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict

#: Legacy prefixes that may stand before a VEX (c4, c5) or EVEX (62) prefix in 64-bit mode.
SEGMENT_PREFIXES = {0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x67}
#: Non-VEX instructions beyond x86-64's baseline (SSE2) that a target region could also leak.
POST_BASELINE = {
    "popcnt", "lzcnt", "movbe", "pshufb", "ptest", "roundss", "roundsd", "roundps", "roundpd", "pmulld",
    "blendvps", "blendvpd", "pblendvb", "pminsd", "pmaxsd", "pinsrq", "pextrq", "insertps", "dpps", "dppd",
}
FUNCTION = re.compile(r"^[0-9a-f]+ <(.*)>:$")
INSTRUCTION = re.compile(r"^\s*[0-9a-f]+:\t((?:[0-9a-f]{2} )+)\s*\t(\S+)\s*(.*)$")


class Counts:
    """Per function: instructions by encoding, and the post-baseline ones."""

    def __init__(self) -> None:
        self.vex = 0
        self.evex = 0
        self.ymm = 0
        self.zmm = 0
        self.fma = 0
        self.post_baseline: set[str] = set()


def encoding(raw: str) -> str:
    """'vex', 'evex' or 'legacy', from an instruction's bytes as objdump prints them."""
    for token in raw.split():
        byte = int(token, 16)
        if byte in SEGMENT_PREFIXES:
            continue
        return {0xC4: "vex", 0xC5: "vex", 0x62: "evex"}.get(byte, "legacy")
    return "legacy"


def disassemble(objdump: str, path: str) -> dict[str, Counts]:
    output = subprocess.run([objdump, "-d", "-C", "--insn-width=16", path], check=True, capture_output=True,
                            text=True).stdout
    functions: dict[str, Counts] = defaultdict(Counts)
    current = None
    for line in output.splitlines():
        header = FUNCTION.match(line)
        if header:
            current = functions[header.group(1)]
            continue
        instruction = INSTRUCTION.match(line)
        if not instruction or current is None:
            continue
        raw, mnemonic, operands = instruction.groups()
        kind = encoding(raw)
        if kind == "vex":
            current.vex += 1
        elif kind == "evex":
            current.evex += 1
        elif mnemonic in POST_BASELINE:
            current.post_baseline.add(mnemonic)
        current.ymm += "%ymm" in operands
        current.zmm += "%zmm" in operands
        current.fma += mnemonic.startswith("vfmadd") or mnemonic.startswith("vfnmadd")
    return functions


def is_own(name: str, level: str) -> bool:
    """Whether the function `name` belongs to the level's namespace. objdump leaves a name it
    cannot demangle mangled (one whose array bound is a template expression, say, in a function
    an -O2 build keeps out of line), and there the namespace reads 8latentmf4avx2."""
    return f"latentmf::{level}::" in name or f"8latentmf{len(level)}{level}" in name


def check(level: str, functions: dict[str, Counts]) -> list[str]:
    problems = []
    for name, c in functions.items():
        if level == "generic" or not is_own(name, level):
            if c.vex or c.evex or c.post_baseline:
                found = ", ".join(filter(None, [c.vex and f"{c.vex} VEX", c.evex and f"{c.evex} EVEX",
                                                " ".join(sorted(c.post_baseline))]))
                problems.append(f"{level}: {name[:200]} is shared code but has {found} instructions")
        elif level == "avx2" and c.evex:
            problems.append(f"avx2: {name[:200]} has {c.evex} AVX-512 (EVEX) instructions")
    kernels = [c for name, c in functions.items() if is_own(name, level)]
    if level == "avx2" and not (sum(c.ymm for c in kernels) and sum(c.fma for c in kernels)):
        problems.append("avx2: the kernels use no ymm register or no FMA: the target pragma did not apply")
    if level == "avx512" and not sum(c.zmm for c in kernels):
        problems.append("avx512: the kernels use no zmm register: the target pragma did not apply")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objdump", default="objdump")
    parser.add_argument("objects", nargs="+", metavar="LEVEL=OBJECT")
    args = parser.parse_args(argv)
    problems, summary = [], []
    for spec in args.objects:
        level, _, path = spec.partition("=")
        functions = disassemble(args.objdump, path)
        if not functions:
            # No machine code: an LTO object (say, CMAKE_INTERPROCEDURAL_OPTIMIZATION=ON) holds
            # compiler IR until the link, so there is nothing to check here.
            print(f"check_isa_objects: {path} holds no machine code (LTO?); not checked")
            return 0
        problems += check(level, functions)
        own = [c for name, c in functions.items() if is_own(name, level)]
        summary.append(f"{level}: {len(functions)} functions, {sum(c.vex for c in own)} VEX / "
                       f"{sum(c.evex for c in own)} EVEX instructions in the level's own")
    if problems:
        print("check_isa_objects: instruction sets leak out of their kernels:", file=sys.stderr)
        for problem in problems[:50]:
            print("  " + problem, file=sys.stderr)
        return 1
    print("check_isa_objects: shared code is baseline x86-64 in every object (" + "; ".join(summary) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
