"""Device-resident tensors, and the staging of numpy arguments in the heap."""
from __future__ import annotations

import math
import numbers
import struct
import weakref
from typing import TYPE_CHECKING, Any, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import DeviceError, UtvmError
from ..layout import Block

from .runtime_abi import _FillKernel

if TYPE_CHECKING:
    from .interface import SessionServices as Session


class Tensor:
    """An array resident in device memory (the session's ``heap`` region).

    Pass it to kernels in place of a numpy array: no copy crosses the link. ``numpy()`` reads
    it back; ``free()`` returns its memory (also done when it is garbage-collected).
    """

    def __init__(self, session: Session, block: Block, shape: Tuple[int, ...], dtype: np.dtype,
                 parent: Optional["Tensor"] = None):
        self.session = session
        self.block = block
        self.shape = shape
        self.dtype = dtype
        self.size = math.prod(shape)
        self.nbytes = self.size * dtype.itemsize
        self._parent = parent   # a view keeps its parent (which owns the memory) alive
        #: The session's device generation when the contents were last written (see lost).
        self._epoch = session._epoch
        self._finalizer = weakref.finalize(self, _free_block, weakref.ref(session), block) if parent is None \
            else weakref.finalize(self, lambda: None)

    def view(self, offset: int, shape: Union[int, Sequence[int]], dtype: Any) -> "Tensor":
        """A tensor over ``nbytes`` of this one's memory from byte ``offset`` (no copy): e.g. one
        parameter of a packed block. It is freed with its parent."""
        self._check()
        shape = (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(n) for n in shape)
        dt = np.dtype(dtype)
        nbytes = math.prod(shape) * dt.itemsize
        if offset < 0 or offset + nbytes > self.nbytes or offset % dt.alignment:
            raise ValueError(f"a {dt.name}{list(shape)} view at byte {offset} does not fit in {self!r} "
                             f"({self.nbytes:,} bytes) or is misaligned")
        block = Block(self.block.region, self.block.start + offset, nbytes, self.block.owner,
                      f"view of {self.block.what}")
        return Tensor(self.session, block, shape, dt, parent=self)

    @property
    def addr(self) -> int:
        return self.block.start

    @property
    def freed(self) -> bool:
        return not self._finalizer.alive or (self._parent is not None and self._parent.freed)

    def _check(self) -> None:
        if self.freed:
            raise UtvmError(f"{self!r} was freed")
        self.session._require_open()

    @property
    def lost(self) -> bool:
        """True when the device was started anew (its memory lost) since the contents were last
        written: :meth:`numpy` then raises instead of returning the new device's bytes."""
        root = self._parent if self._parent is not None else self
        while root._parent is not None:
            root = root._parent
        return max(root._epoch, self._epoch) != self.session._epoch

    def _written(self) -> None:
        """The contents are valid again (written by the host or by a kernel); for a view, only
        the view's own bytes."""
        self._epoch = self.session._epoch

    def numpy(self) -> np.ndarray:
        """A new numpy array with the tensor's current contents. DeviceError when they were lost
        in a restart of the device (write the tensor again first: :meth:`copyfrom`)."""
        self._check()
        if self.lost:
            raise DeviceError(f"{self!r} lost its contents when the device was started again ({self.session._lost_why});"
                              " its memory now holds whatever the new device has there: write it again "
                              "(t.copyfrom(array)) before reading it")
        out = np.empty(self.shape, self.dtype)
        if self.nbytes:
            self.session.read_bulk(self.addr, out, f"read {self.dtype.name}{list(self.shape)}")
        return out

    def fill_bytes(self, value: int) -> "Tensor":
        """Set every byte of the tensor to ``value`` on the device itself: one call, no data
        crosses the link (0xFF makes float tensors NaN: handy to catch outputs never written)."""
        self._check()
        session = self.session
        blob = struct.pack(session._order + "QiiI", 0, int(value) & 0xFF, 0, self.nbytes)
        blob = struct.pack(session._ptr_fmt, self.addr) + bytes(8 - session.cfg.pointer_size) + blob[8:]
        session._run_task(_FillKernel(session), blob[:24], session.timeout)
        self._written()
        return self

    def copyfrom(self, array: Any) -> "Tensor":
        """Overwrite the tensor with ``array`` (same shape and dtype)."""
        self._check()
        arr = np.ascontiguousarray(array)
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise TypeError(f"copyfrom() needs a {self.dtype.name} array of shape {self.shape}, got "
                            f"{arr.dtype.name} {arr.shape}")
        self.session.write_bulk(self.addr, arr, f"write {self.dtype.name}{list(self.shape)}")
        self._written()
        return self

    def free(self) -> None:
        """Return the tensor's device memory. Using the tensor afterwards raises."""
        self._finalizer()

    def __repr__(self) -> str:
        state = " freed" if self.freed else ""
        return f"<Tensor {self.dtype.name}{list(self.shape)} at 0x{self.block.start:x}{state}>"



def _free_block(session_ref: "weakref.ref[Session]", block: Block) -> None:
    session = session_ref()
    if session is not None and session.layout is not None and session.is_open:
        try:
            session.layout.free(block)
        except ValueError:
            pass


