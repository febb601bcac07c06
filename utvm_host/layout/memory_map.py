"""A printable, serialisable snapshot of a device's memory: who uses which bytes."""
from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional

if TYPE_CHECKING:
    from .allocator import SectionAllocator


@dataclass(frozen=True)
class MapRow:
    """One allocated block in a :class:`MemoryMap` (bytes, absolute addresses)."""

    region: str
    owner: str
    what: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class RegionUsage:
    """Totals of one region in a :class:`MemoryMap`: ``size`` is the capacity, ``used`` the bytes
    in blocks, ``free = size - used``, ``largest_free`` the largest contiguous free range."""

    name: str
    start: int
    size: int
    used: int
    free: int
    largest_free: int

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class MemoryMap:
    """A snapshot of a :class:`MemoryLayout`.

    ``regions`` holds one :class:`RegionUsage` per region (layout order); ``rows`` holds one
    :class:`MapRow` per *allocated* block, grouped by region in layout order and sorted by
    start within a region. Free space is not listed as rows: it is summarised by each region's
    ``free`` and ``largest_free``.

    ``str(map)`` is a plain-text table; ``_repr_html_()`` the same as HTML for notebooks;
    ``to_dict()`` a JSON-serialisable ``{"regions": [...], "rows": [...]}``.
    """

    regions: List[RegionUsage] = field(default_factory=list)
    rows: List[MapRow] = field(default_factory=list)
    #: Measurements shown under the table (stack and workspace use, for instance).
    notes: List[str] = field(default_factory=list)

    @classmethod
    def from_allocators(cls, allocators: Iterable[SectionAllocator]) -> "MemoryMap":
        """Snapshot the given allocators, in the given order."""
        regions: List[RegionUsage] = []
        rows: List[MapRow] = []
        for a in allocators:
            regions.append(RegionUsage(a.name, a.start, a.size, a.used, a.free_bytes, a.largest_free))
            rows.extend(MapRow(b.region, b.owner, b.what, b.start, b.size) for b in a.blocks())
        return cls(regions, rows)

    def rows_of(self, region: str) -> List[MapRow]:
        """The rows of one region, by start address."""
        return [r for r in self.rows if r.region == region]

    def to_dict(self) -> Dict[str, Any]:
        """``{"regions": [RegionUsage fields...], "rows": [MapRow fields...]}`` (str and int only)."""
        return {"regions": [asdict(r) for r in self.regions],
                "rows": [asdict(r) for r in self.rows]}

    # -- rendering ----------------------------------------------------------------------------
    def _hex_width(self) -> int:
        top = max([r.end for r in self.regions] + [r.end for r in self.rows], default=0)
        return max(8, len(f"{top:x}"))

    def _header_text(self, r: RegionUsage, hw: int) -> str:
        text = (f"0x{r.start:0{hw}x}-0x{r.end:0{hw}x}  capacity {r.size:,}  "
                f"used {r.used:,}  free {r.free:,}")
        if r.largest_free != r.free:
            text += f"  largest free block {r.largest_free:,}"
        return text

    def __str__(self) -> str:
        """Per region a header line ``name  0xSTART-0xEND  capacity N  used N  free N`` (END is
        exclusive; ``largest free block N`` is added when the free space is fragmented), then
        one indented line per block: owner (``-`` when empty), what, start address, size."""
        hw = self._hex_width()
        name_w = max((len(r.name) for r in self.regions), default=0)
        owner_w = max((len(r.owner or "-") for r in self.rows), default=0)
        what_w = max((len(r.what) for r in self.rows), default=0)
        size_w = max((len(f"{r.size:,}") for r in self.rows), default=0)
        lines: List[str] = []
        for reg in self.regions:
            lines.append(f"{reg.name:<{name_w}}  {self._header_text(reg, hw)}")
            rows = self.rows_of(reg.name)
            for row in rows:
                lines.append(f"  {row.owner or '-':<{owner_w}}  {row.what:<{what_w}}  "
                             f"0x{row.start:0{hw}x}  {row.size:>{size_w},}".rstrip())
            if not rows:
                lines.append("  (empty)")
        lines.extend(self.notes)
        return "\n".join(lines)

    def plot(self, path: str, *, title: Optional[str] = None) -> str:
        """Draw the device memory as a PNG: one bar per region, its blocks coloured by owner
        (free space white), sizes in the labels. Needs matplotlib (``pip install
        'utvm-host[plot]'``). Returns ``path``."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from matplotlib.patches import Patch
        except ImportError as exc:
            from .errors import ToolNotFoundError
            raise ToolNotFoundError("matplotlib", "pip install 'utvm-host[plot]' (or pip install matplotlib) "
                                                  "to draw memory maps") from exc
        owners = sorted({r.owner or "tensors" for r in self.rows})
        palette = plt.get_cmap("tab20")
        colour = {o: palette(i % 20) for i, o in enumerate(owners)}
        fig, axes = plt.subplots(len(self.regions), 1, figsize=(10, 1.1 + 0.9 * len(self.regions)), squeeze=False)
        for ax, region in zip(axes[:, 0], self.regions):
            ax.barh(0, region.size, left=0, color="white", edgecolor="black", height=0.6)
            for row in self.rows_of(region.name):
                ax.barh(0, max(row.size, region.size / 2000), left=row.start - region.start, height=0.6,
                        color=colour[row.owner or "tensors"], edgecolor="none")
            ax.set_xlim(0, region.size)
            ax.set_yticks([])
            ax.set_title(f"{region.name}  0x{region.start:x}-0x{region.end:x}: used {region.used:,} of "
                         f"{region.size:,} bytes", fontsize=9, loc="left")
            ax.tick_params(axis="x", labelsize=7)
        fig.legend(handles=[Patch(color=colour[o], label=o) for o in owners], loc="lower center",
                   ncol=min(len(owners), 6), fontsize=8, frameon=False)
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout(rect=(0, 0.08, 1, 0.95 if title else 1))
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def _repr_html_(self) -> str:
        """The table of ``__str__`` as HTML; every name is HTML-escaped."""
        hw = self._hex_width()
        esc = html.escape
        out = ['<table class="utvm-memory-map">',
               "<thead><tr><th>region</th><th>owner</th><th>what</th><th>start</th>"
               "<th>size</th></tr></thead>", "<tbody>"]
        for reg in self.regions:
            out.append(f'<tr><th style="text-align:left">{esc(reg.name)}</th>'
                       f'<th colspan="4" style="text-align:left">{esc(self._header_text(reg, hw))}</th></tr>')
            for row in self.rows_of(reg.name):
                out.append(f"<tr><td></td><td>{esc(row.owner or '-')}</td><td>{esc(row.what)}</td>"
                           f"<td><code>0x{row.start:0{hw}x}</code></td>"
                           f'<td style="text-align:right">{row.size:,}</td></tr>')
        out.append("</tbody></table>")
        out.extend(f"<p>{esc(note)}</p>" for note in self.notes)
        return "\n".join(out)
