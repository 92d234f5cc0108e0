"""The shipped experiment configs, installed with the package.

Each module (`default`, `csv`, `parquet`, `multiclass`, `multilabel`, `images`) defines
`get_config()` returning an ml_collections ConfigDict. The training CLI takes a config
file or a shipped config's name, from any directory:

    python -m focal_dist.train --config=images ...            # by name
    python -m focal_dist.train --config=configs/images.py ... # a checkout's path; outside
                                                              # one, the shipped file
    python -m focal_dist.train --config=my_config.py ...      # your own file, which may
                                                              # start from ours:
    # from focal_dist.configs import default; config = default.get_config()
"""

from __future__ import annotations

import os

from absl import flags
from ml_collections import config_flags

DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def names() -> list[str]:
    """The shipped configs' names."""
    return sorted(
        name[:-3]
        for name in os.listdir(DIRECTORY)
        if name.endswith(".py") and not name.startswith("_")
    )


def path(name: str) -> str:
    """The file of a config: an existing file as given, else the shipped config named
    `name`, `name.py` or `configs/name.py`. ValueError naming `name` otherwise."""
    if os.path.isfile(name):
        return name
    stem = os.path.basename(name)
    stem = stem[:-3] if stem.endswith(".py") else stem
    is_shipped_form = os.path.dirname(name) in (
        "",
        "configs",
        os.path.join("focal_dist", "configs"),
    )
    if is_shipped_form and stem in names():
        return os.path.join(DIRECTORY, f"{stem}.py")
    raise ValueError(
        f"config {name!r}: no such file, and not a shipped config (one of "
        f"{', '.join(names())}, also as configs/<name>.py)"
    )


def get_config(name: str):
    """`get_config()` of a config file or shipped config (see `path`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("focal_dist_config", path(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


class _ShippedConfigParser(flags.ArgumentParser):
    """Hands ml_collections' config-file parser a path, resolving shipped names first."""

    def __init__(self, parser: flags.ArgumentParser):
        self._parser = parser

    def parse(self, argument):
        if isinstance(argument, str):
            file, *arguments = argument.split(":", 1)
            argument = ":".join([path(file), *arguments])
        return self._parser.parse(argument)

    def flag_type(self):
        return self._parser.flag_type()


def define_config_flag(
    name: str = "config", help_string: str = "", flag_values=flags.FLAGS
) -> flags.FlagHolder:
    """`config_flags.DEFINE_config_file`, whose value may also name a shipped config."""
    holder = config_flags.DEFINE_config_file(
        name,
        None,
        help_string or f"Config file or shipped config name ({', '.join(names())}).",
        flag_values=flag_values,
    )
    flag_values[name].parser = _ShippedConfigParser(flag_values[name].parser)
    return holder
