"""Place a library at addresses chosen by the section allocator and link it there.

Linking is done by the target's own linker (through the gcc driver, so the right multilib
``libgcc``/``libm`` come along) with ``linker/library.ld.in``. A first placement links once:

1. *estimate*: an upper bound of each output section's size (:class:`SizeEstimator`): the
   object's input sections that the script puts there, each with its worst alignment padding,
   plus every member of the link's archives (``libgcc``/``libc``/``libm``, found through the
   driver's ``-###``) that could define a symbol the object, or such a member, leaves
   undefined -- the archive's own symbol index, the one the linker pulls members by;
2. *place*: allocate the estimates, link at the allocated addresses, check each section came out
   at its block's start and no larger, then give back each block's tail beyond the real size.

Why the estimate bounds the linked size, per target family: the output is the input sections
plus padding (at most ``align - 1`` before each input section: the output section starts at
its largest input alignment, so the padding does not depend on the address) plus what the
linker adds. x86-64 host: nothing that grows a placed section in a static link (GOTPCRELX and
TLS relaxations rewrite instructions in place, the same size). RISC-V: the configs link
``--no-relax`` (sizes are the input's), and relaxation would only delete bytes anyway. Arm
(Thumb) and AArch64 hosts: the linker adds *veneers* for a BL/B.W whose target is out of range
(+-16 MiB on Thumb-2, +-128 MiB on AArch64) or, on Arm, in ARM state; neither occurs while code
and the functions it calls share such a span (the default Cortex-M configs: one code region of
at most 4 MiB, all of it Thumb code), but the estimate cannot prove it for every configuration.
So the check in step 2 is what makes it safe: a section larger than its block (a veneer, a
linker-made ``.got``) or one the estimate said empty frees the blocks and links again at a new
place sized by what that link produced; nothing is written to the device before a link passed
the check.

When the estimate cannot be made (an archive that is not a plain ``ar`` with an index, an input
section the script does not place), does not fit, or the optimistic link fails, the exact
two-pass path runs, with its error messages unchanged: *measure* (link at the regions' start
addresses with unresolved symbols tolerated, read the real sizes and any symbol nobody defines),
then allocate those sizes and link again. The sizes a placed link produced are remembered per
library and set of external names, so plan(), fits() and a later load() reuse them.

Symbols of the device runtime and of libraries loaded earlier reach the linker as absolute
addresses in a generated script of quoted assignments (``"add" = 0x...;``; not ``--defsym``,
which misreads names such as ``add`` or ``beef`` as hex numbers): a library can call the
runtime and other libraries. A link's scripts are deleted once it is done, and a placed
image's ELF when its module is unloaded (:meth:`LinkedImage.discard`), so a session's
folder does not grow over load/unload cycles.

The package's modules: ``archive`` (GNU archives as the linker reads them), ``estimate``
(:class:`SizeEstimator`), ``image`` (:class:`LinkedImage`) and ``linker`` (:class:`Linker`).
"""
from __future__ import annotations

from .estimate import SizeEstimator
from .image import LinkedImage
from .linker import SECTION_REGIONS, Linker

__all__ = ["SECTION_REGIONS", "LinkedImage", "Linker", "SizeEstimator"]
