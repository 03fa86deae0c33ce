"""The help format of every relift command line: the description as written, and each option's default."""

import argparse
import copy


def _shown(default) -> bool:
    # None and a flag's False say nothing the help text does not.
    return default is not None and default is not False and default is not argparse.SUPPRESS


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """argparse's formatter for `--help`: the module docstring keeps its layout, and every option shows its
    default, also an option without a help text."""

    def _format_action(self, action: argparse.Action) -> str:
        if action.option_strings and not action.help and _shown(action.default):
            action = copy.copy(action)
            action.help = "default: %(default)s"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        return super()._get_help_string(action) if _shown(action.default) else action.help
