"""Shell completion scripts, written from the parser itself so that they never fall behind it.

eval "$(atelier completion bash)"                 # in ~/.bashrc
eval "$(atelier completion zsh)"                  # in ~/.zshrc
atelier completion fish > ~/.config/fish/completions/atelier.fish
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass

SHELLS = ("bash", "zsh", "fish")


@dataclass(frozen=True, slots=True)
class _Option:
    flags: tuple[str, ...]
    takes_value: bool
    help: str


@dataclass(frozen=True, slots=True)
class _Command:
    name: str
    help: str
    options: tuple[_Option, ...]


def _options(parser: argparse.ArgumentParser) -> tuple[_Option, ...]:
    return tuple(
        _Option(tuple(action.option_strings), action.nargs != 0, action.help or "")
        for action in parser._actions
        if action.option_strings and action.help != argparse.SUPPRESS
    )


def _commands(parser: argparse.ArgumentParser) -> tuple[_Command, ...]:
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in subparsers._choices_actions}
    return tuple(
        _Command(name, helps.get(name, ""), _options(sub)) for name, sub in subparsers.choices.items()
    )


def completion_script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script of `shell` (bash, zsh or fish) for the command `parser` parses."""
    top = _options(parser)
    commands = _commands(parser)
    if shell == "fish":
        return _fish(parser.prog, top, commands)
    script = _bash(parser.prog, top, commands)
    # zsh runs bash's completion functions through bashcompinit.
    return f"autoload -U +X bashcompinit && bashcompinit\n{script}" if shell == "zsh" else script


def _bash(prog: str, top: tuple[_Option, ...], commands: tuple[_Command, ...]) -> str:
    valued = sorted({flag for c in commands for o in c.options if o.takes_value for flag in o.flags})
    function = f"_{prog}_complete"
    cases = "\n".join(
        f'    {shlex.quote(c.name)}) words="{" ".join(f for o in c.options for f in o.flags)}" ;;'
        for c in commands
    )
    names = " ".join(c.name for c in commands)
    top_flags = " ".join(f for o in top for f in o.flags)
    return f"""# bash completion for {prog}: eval "$({prog} completion bash)"
{function}() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" command="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${{COMP_WORDS[i]}}" in
      {"|".join(valued) or "--"}) ((i++)) ;;
      -*) ;;
      *) command="${{COMP_WORDS[i]}}"; break ;;
    esac
  done
  case "$prev" in
    {"|".join(valued) or "--"}) COMPREPLY=(); return ;;  # a value: the shell's default (file names)
  esac
  local words
  case "$command" in
    "") words="{names} {top_flags}" ;;
{cases}
  esac
  if [[ -z "$command" || "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
}}
complete -o default -F {function} {prog}
"""


def _fish(prog: str, top: tuple[_Option, ...], commands: tuple[_Command, ...]) -> str:
    lines = [f"# fish completion for {prog}: {prog} completion fish > ~/.config/fish/completions/{prog}.fish"]
    names = " ".join(c.name for c in commands)
    for command in commands:
        lines.append(
            f"complete -c {prog} -n 'not __fish_seen_subcommand_from {names}' "
            f"-a {shlex.quote(command.name)} -d {shlex.quote(command.help)}"
        )
    for option in top:
        lines.append(_fish_option(prog, option, f"not __fish_seen_subcommand_from {names}"))
    for command in commands:
        for option in command.options:
            lines.append(_fish_option(prog, option, f"__fish_seen_subcommand_from {command.name}"))
    return "\n".join(lines) + "\n"


def _fish_option(prog: str, option: _Option, condition: str) -> str:
    parts = [f"complete -c {prog} -n {shlex.quote(condition)}"]
    for flag in option.flags:
        parts.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
    if option.takes_value:
        parts.append("-r -F")  # a value, often a file name
    parts.append(f"-d {shlex.quote(option.help.split(' (')[0])}")
    return " ".join(parts)
