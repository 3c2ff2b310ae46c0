"""ifupdown: ``/etc/network/interfaces`` and ``/etc/network/interfaces.d/*`` (Debian).

The first interface is the one named by the first ``iface`` stanza (the main file first, then
the directory's files by name) that configures an address (any method but ``manual`` and
``loopback``; ``lo`` never counts). Its ``inet static`` stanza becomes ``inet dhcp``, an
``inet6 static`` one ``inet6 auto``, and the options that pin the old network go (``address``,
``netmask``, ``broadcast``, ``network``, ``pointopoint``, ``gateway``, ``hwaddress``,
``dns-nameservers``); every other option stays. Stanzas of other interfaces that pin
anything are removed, with their names on ``auto``/``allow-*`` lines; a file of
``interfaces.d`` left with nothing but comments is removed. ``up`` commands are not parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hostimage.imaging.netconfig.base import Outcome, decode, encode
from hostimage.imaging.netconfig.collect import IFUPDOWN
from hostimage.imaging.netconfig.model import Edit, Pins, StaticNetwork, change

MAIN = "/etc/network/interfaces"
_TOP = frozenset(
    ("iface", "mapping", "auto", "source", "source-directory", "rename", "no-auto-down")
)
_PIN_OPTIONS = {
    "address": "addresses",
    "pointopoint": "addresses",
    "gateway": "gateways",
    "hwaddress": "macs",
    "dns-nameservers": "dns",
}
# Parts of an address: dropped with it, not reported on their own.
_ADDRESS_PARTS = frozenset(("netmask", "broadcast", "network"))
_DROPPED = frozenset(_PIN_OPTIONS) | _ADDRESS_PARTS
_NO_ADDRESS = frozenset(("manual", "loopback"))


def _words(line: str) -> list[str]:
    return line.replace("\\\n", " ").split()


def _is_note(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _is_top(words: list[str]) -> bool:
    return bool(words) and (words[0] in _TOP or words[0].startswith("allow-"))


@dataclass
class Stanza:
    header: str
    body: list[str] = field(default_factory=list)

    @property
    def words(self) -> list[str]:
        return _words(self.header)

    @property
    def is_iface(self) -> bool:
        return self.words[0] == "iface" and len(self.words) >= 2

    @property
    def name(self) -> str:
        return self.words[1]

    @property
    def family(self) -> str | None:
        return self.words[2] if len(self.words) > 2 else None

    @property
    def method(self) -> str | None:
        return self.words[3] if len(self.words) > 3 else None

    def pins(self) -> Pins:
        pins = Pins(other=self.method == "static")
        for line in self.body:
            words = _words(line)
            if _is_note(line) or not words:
                continue
            kind = _PIN_OPTIONS.get(words[0])
            if kind == "macs":
                pins.add(kind, words[-1])
            elif kind == "dns":
                pins.add(kind, *words[1:])
            elif kind is not None:
                pins.add(kind, *words[1:2])
            elif words[0] in _ADDRESS_PARTS:
                pins.other = True
        return pins

    def configures_address(self) -> bool:
        if not self.is_iface or self.name == "lo":
            return False
        if self.method is None:
            return bool(self.pins().addresses)
        return self.method not in _NO_ADDRESS

    def render(self) -> str:
        return self.header + "".join(self.body)

    def rebuilt(self, method: str | None, extra: list[str]) -> Stanza:
        """This stanza with ``method`` and without the pinning options; ``extra`` option
        lines go right after the header."""
        words = self.words
        header = self.header
        if method is not None and method != self.method:
            family = self.family or "inet"
            indent = self.header[: len(self.header) - len(self.header.lstrip())]
            header = indent + " ".join(["iface", self.name, family, method, *words[4:]]) + "\n"
        kept = [ln for ln in self.body if _is_note(ln) or _words(ln)[0] not in _DROPPED]
        return Stanza(header, [*extra, *kept])

    def indent(self) -> str:
        for line in self.body:
            if not _is_note(line):
                return line[: len(line) - len(line.lstrip())] or "    "
        return "    "


Item = str | Stanza


def parse(text: str) -> list[Item]:
    """Logical lines of an interfaces file, grouped into stanzas; comments and blank lines
    after a stanza's last option stay outside it."""
    logical: list[str] = []
    buf = ""
    for line in text.splitlines(keepends=True):
        buf += line
        if not line.rstrip("\r\n").endswith("\\"):
            logical.append(buf)
            buf = ""
    if buf:
        logical.append(buf)
    items: list[Item] = []
    current: Stanza | None = None
    pending: list[str] = []
    for line in logical:
        words = _words(line)
        if _is_note(line):
            pending.append(line)
        elif _is_top(words):
            items += pending
            pending = []
            current = Stanza(line) if words[0] in ("iface", "mapping") else None
            items.append(current if current is not None else line)
        elif current is not None:
            current.body += [*pending, line]
            pending = []
        else:
            items += [*pending, line]
            pending = []
    return items + pending


def _static_lines(static: StaticNetwork, indent: str) -> list[str]:
    lines = [f"{indent}address {static.address}\n"]
    if static.gateway:
        lines.append(f"{indent}gateway {static.gateway}\n")
    if static.dns:
        lines.append(f"{indent}dns-nameservers {' '.join(static.dns)}\n")
    return lines


def _terminated(text: str) -> str:
    # A rewritten file may gain a stanza after its last line.
    return text if not text or text.endswith("\n") else text + "\n"


def _family_of(static: StaticNetwork) -> str:
    return "inet" if static.version == 4 else "inet6"


class Ifupdown:
    """The ifupdown family."""

    name = IFUPDOWN

    def reset(self, files: Mapping[str, bytes], static: StaticNetwork | None) -> Outcome:
        """See the module docstring."""
        order = sorted(files, key=lambda p: (p != MAIN, p))
        parsed = {path: parse(_terminated(decode(files[path]))) for path in order}
        first = next(
            (
                item.name
                for path in order
                for item in parsed[path]
                if isinstance(item, Stanza) and item.configures_address()
            ),
            None,
        )
        outcome = Outcome(has_first=first is not None)
        wanted = _family_of(static) if static is not None else None
        placed = False
        pins_of: dict[str, Pins] = {p: Pins() for p in order}
        holds_first: set[str] = set()
        changed: set[str] = set()
        gone: set[str] = set()
        for path in order:
            new: list[Item] = []
            last_first = None
            for item in parsed[path]:
                if not isinstance(item, Stanza) or not item.is_iface or item.name == "lo":
                    new.append(item)
                    continue
                pins = item.pins()
                if item.name == first:
                    last_first = len(new)
                    if static is not None and item.family == wanted and not placed:
                        item = item.rebuilt("static", _static_lines(static, item.indent()))
                        placed = True
                    elif pins:
                        method = {"inet": "dhcp", "inet6": "auto"}.get(item.family or "")
                        item = item.rebuilt(method if item.method == "static" else None, [])
                    else:
                        new.append(item)
                        continue
                    holds_first.add(path)
                    changed.add(path)
                    pins_of[path].merge(pins)
                    new.append(item)
                elif pins:
                    gone.add(item.name)
                    changed.add(path)
                    pins_of[path].merge(pins)
                else:
                    new.append(item)
            if static is not None and not placed and last_first is not None and first:
                header = f"iface {first} {wanted} static\n"
                new.insert(last_first + 1, Stanza(header, _static_lines(static, "    ")))
                placed = True
                holds_first.add(path)
                changed.add(path)
            parsed[path] = new
        still = {i.name for p in order for i in parsed[p] if isinstance(i, Stanza) and i.is_iface}
        self._drop_from_auto(parsed, order, gone - still, changed)
        for path in order:
            if path not in changed:
                continue
            action = "removed"
            text = "".join(i.render() if isinstance(i, Stanza) else i for i in parsed[path])
            if path in holds_first:
                action = "static" if static is not None else "dhcp"
            elif path == MAIN or any(not _is_note(ln) for ln in text.splitlines(keepends=True)):
                action = "edited"
            data = None if action == "removed" else encode(text)
            interface = first if path in holds_first else None
            outcome.entries.append(
                (
                    Edit(path, data),
                    change(path, self.name, action, interface=interface, pins=pins_of[path]),
                )
            )
        return outcome

    def _drop_from_auto(
        self, parsed: dict[str, list[Item]], order: list[str], gone: set[str], changed: set[str]
    ) -> None:
        if not gone:
            return
        for path in order:
            new: list[Item] = []
            for item in parsed[path]:
                words = _words(item) if isinstance(item, str) else []
                if (
                    isinstance(item, str)
                    and words
                    and (words[0] == "auto" or words[0].startswith("allow-"))
                ):
                    kept = [w for w in words[1:] if w not in gone]
                    if len(kept) != len(words) - 1:
                        changed.add(path)
                        if not kept:
                            continue
                        item = " ".join([words[0], *kept]) + "\n"
                new.append(item)
            parsed[path] = new

    def create(self, static: StaticNetwork, files: Mapping[str, bytes]) -> Outcome | None:
        """ifupdown cannot configure an interface without its name: None."""
        return None
