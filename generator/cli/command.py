"""How every flowpol command reads in `--help` and behaves at its edges.

Help: a flag shows no value (typer prints `<bool>`), every other option its metavar
(never `<str>`, `<list[str]>`), a variadic argument reads `INPUT...` in the usage line
(typer prints `{INPUT...}...`), and docstrings are unwrapped so that the help's own
wrapping decides the line breaks (a source line break is no place to break a phrase).

Edges: Ctrl-C and a closed stdout (``flowpol ... | head``) are turned into exceptions
of their own before typer sees them (typer maps Ctrl-C to a silent exit 130 and a closed
pipe to exit 1); ``generator.cli.main`` prints one line for the first and nothing for
the second.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


class Interrupted(Exception):
    """Ctrl-C (SIGINT) while a command ran."""


class OutputClosed(Exception):
    """The reader of stdout went away (EPIPE), e.g. `flowpol verify ... | head`."""


_PARAGRAPH = re.compile(r"\n\s*\n")


def unwrap(text: str | None) -> str | None:
    """Paragraphs joined into single lines; paragraphs stay apart."""
    if not text:
        return text
    return "\n\n".join(" ".join(p.split()) for p in _PARAGRAPH.split(inspect.cleandoc(text)))


def _tidy_params(command: Any) -> None:
    for param in command.params:
        if getattr(param, "help", None):
            param.help = unwrap(param.help)
        if getattr(param, "param_type_name", None) == "argument":
            # its metavar (INPUT...) says it all; typer would add `<list[str]>`
            param.display_type_rich = _no_type
            continue
        if getattr(param, "param_type_name", None) != "option":
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""  # a flag takes no value: show none
        elif param.metavar is None:
            # the option's own name, as kubectl and click show it: --context CONTEXT
            longest = max(param.opts, key=len).lstrip("-")
            param.metavar = longest.upper().replace("-", "_")


def _no_type(ctx: Any) -> None:
    return None


class FlowpolCommand(TyperCommand):
    # Old spellings of an option, kept for one release: {"-o": "--out"}. Hidden from
    # the help; using one prints a one-line deprecation note (``with_aliases``).
    deprecated_aliases: dict[str, str] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["help"] = unwrap(kwargs.get("help"))
        super().__init__(*args, **kwargs)
        _tidy_params(self)

    @classmethod
    def with_aliases(cls, aliases: dict[str, str]) -> type[FlowpolCommand]:
        return type("FlowpolCommandWithAliases", (cls,), {"deprecated_aliases": dict(aliases)})

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if self.deprecated_aliases:
            args = self._renamed(list(args))
        return super().parse_args(ctx, args)

    def _renamed(self, args: list[str]) -> list[str]:
        """``args`` with the deprecated spellings replaced. The value of an option that
        takes one is passed over, so that `--namespace -o` stays a namespace."""
        takes_value = {opt for p in self.params
                       if getattr(p, "param_type_name", None) == "option"
                       and not getattr(p, "is_flag", False)
                       for opt in (*p.opts, *p.secondary_opts)}
        aliases = self.deprecated_aliases
        out: list[str] = []
        used: list[tuple[str, str]] = []
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg == "--":
                out += [arg, *args[i:]]
                break
            name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
            if name in aliases:
                used.append((name, aliases[name]))
                out.append(aliases[name] + eq + value)
                continue
            short = arg[:2]
            if not arg.startswith("--") and len(arg) > 2 and short in aliases:
                used.append((short, aliases[short]))  # -oPATH
                out += [aliases[short], arg[2:]]
                continue
            out.append(arg)
            if name in takes_value and not eq and i < len(args):
                out.append(args[i])
                i += 1
        for old, new in dict.fromkeys(used):
            typer.echo(f"flowpol: warning: {self.name} {old} PATH is deprecated and goes away "
                       f"in the next release; use {new} PATH (-o/--output names an output "
                       "format, as in kubectl)", err=True)
        return out

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if getattr(param, "param_type_name", None) != "argument":
                continue
            name = param.metavar or param.name.upper()
            if param.nargs != 1 and not name.endswith("..."):
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None
        except BrokenPipeError:
            raise OutputClosed() from None


class FlowpolGroup(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["help"] = unwrap(kwargs.get("help"))
        super().__init__(*args, **kwargs)
        _tidy_params(self)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class FlowpolTyper(typer.Typer):
    """A Typer whose commands are FlowpolCommands."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=FlowpolGroup, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", FlowpolCommand)
        return super().command(*args, **kwargs)
