"""The smaller ``nft -f`` transaction that turns one rendered ruleset into the next.

Why this module exists: replacing the whole table costs ``nft`` time in proportion to its size,
although a policy change usually touches one class chain or set and the dispatch maps. Given the
text that is installed and the text that should be, ``ruleset_update`` writes one transaction
that replaces only the sets, maps and class chains that differ; ``nft -f`` commits it as a
whole, so packets still see the old table or the new one, never a mixture.

What it may replace: the atom and dispatch maps (flushed, then declared again with their new
elements), the class sets and class chains (``eg_cN``/``in_cN``). A chain is deleted and added
again rather than edited (nft cannot change a chain's comment in place); the dispatch maps of
its direction are flushed first, as their elements jump to it. Everything else (the hook
chains, the node sets, any map or set header) must be unchanged, or there is no update
(``None``) and the caller installs the full text. Text that is identical gives ``""``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from kubefence.dataplane.nft._render import TABLE

__all__ = ["ruleset_update"]

_BLOCK = re.compile(r"^\t(set|map|chain) (\S+) \{\n.*?^\t\}$", re.MULTILINE | re.DOTALL)
_STARTS = re.compile(r"^\t(?:set|map|chain) \S+ \{$", re.MULTILINE)
_CLASS = re.compile(r"^(eg|in)_c\d+$")
_MAPS = {f"{kind}_v{version}" for kind in ("atoms", "egress", "ingress") for version in (4, 6)}
_DISPATCH = {"eg": ("egress_v4", "egress_v6"), "in": ("ingress_v4", "ingress_v6")}


@dataclass(frozen=True, slots=True)
class _Block:
    kind: str  # set | map | chain
    name: str
    text: str  # the block as rendered, first to last line

    @property
    def header(self) -> tuple[str, ...]:
        """A set's or map's declaration without its elements (type, flags)."""
        return tuple(
            line for line in self.text.split("\n") if line.startswith(("\t\ttype ", "\t\tflags "))
        )


@dataclass(frozen=True, slots=True)
class _Parsed:
    blocks: dict[tuple[str, str], _Block]  # the replaceable ones
    rest: tuple[str, ...]  # every other line that reaches the kernel, in order


def _replaceable(kind: str, name: str) -> bool:
    if kind == "map":
        return name in _MAPS
    return _CLASS.match(name) is not None


@functools.lru_cache(maxsize=4)  # the installed text was the wanted one of the call before
def _parse(text: str) -> _Parsed | None:
    blocks: dict[tuple[str, str], _Block] = {}
    rest: list[str] = []
    position = matched = 0
    for found in _BLOCK.finditer(text):
        matched += 1
        kind, name = found.group(1), found.group(2)
        between = text[position : found.start()]
        if _replaceable(kind, name):
            blocks[(kind, name)] = _Block(kind, name, found.group(0))
        else:
            between += found.group(0)
        rest.extend(_kernel_lines(between))
        position = found.end()
    if len(_STARTS.findall(text)) != matched:
        return None  # a block without its end: not text this package rendered
    rest.extend(_kernel_lines(text[position:]))
    return _Parsed(blocks, tuple(rest))


def _kernel_lines(text: str) -> list[str]:
    """The lines nft reads (comments and blank lines are not part of the table)."""
    return [line for line in text.split("\n") if line.strip() and not line.lstrip().startswith("#")]


def ruleset_update(installed: str, wanted: str) -> str | None:
    """One ``nft -f`` transaction turning table ``inet kubefence`` as ``installed`` (a text of
    ``render_ruleset``) into ``wanted``; ``""`` if they are the same, ``None`` when the change
    reaches beyond maps, class sets and class chains (install ``wanted`` whole instead)."""
    if installed == wanted:
        return ""
    old, new = _parse(installed), _parse(wanted)
    if old is None or new is None or old.rest != new.rest:
        return None
    for key, block in new.blocks.items():
        previous = old.blocks.get(key)
        if (
            key[0] != "chain"
            and previous is not None
            and previous.text != block.text
            and previous.header != block.header
        ):
            return None  # a set's or map's type or flags changed
    changed = {k for k, b in new.blocks.items() if k in old.blocks and old.blocks[k] != b}
    added = {k for k in new.blocks if k not in old.blocks}
    removed = {k for k in old.blocks if k not in new.blocks}
    if any(kind == "map" for kind, _ in added | removed):
        return None
    chains = sorted(name for kind, name in changed | removed if kind == "chain")
    maps = {name for kind, name in changed if kind == "map"}
    for chain in chains:
        maps.update(_DISPATCH[chain[:2]])  # their elements jump to a chain about to go
    lines = [f"# kubefence: update of table {TABLE} (one transaction)"]
    lines += [f"flush map {TABLE} {name}" for name in sorted(maps)]
    for chain in chains:
        lines += [f"flush chain {TABLE} {chain}", f"delete chain {TABLE} {chain}"]
    lines += [f"flush set {TABLE} {name}" for kind, name in sorted(changed) if kind == "set"]
    lines += [f"delete set {TABLE} {name}" for kind, name in sorted(removed) if kind == "set"]
    declared = [new.blocks[k] for k in sorted(changed | added) if k[0] == "set"]
    declared += [new.blocks[("chain", name)] for name in chains if ("chain", name) in new.blocks]
    declared += [new.blocks[k] for k in sorted(added) if k[0] == "chain"]
    declared += [new.blocks[("map", name)] for name in sorted(maps)]
    if declared:
        lines.append(f"table {TABLE} {{")
        lines += [block.text for block in declared]
        lines.append("}")
    return "\n".join(lines) + "\n"
