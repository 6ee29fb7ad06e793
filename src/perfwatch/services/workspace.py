"""Setting up a deployment: the commented example config that `perfwatch init` writes."""

from importlib import resources
from pathlib import Path


def example_config() -> str:
    """config/perfwatch.example.toml, as shipped with this perfwatch."""
    return (
        resources.files("perfwatch.examples")
        .joinpath("perfwatch.example.toml")
        .read_text(encoding="utf-8")
    )


# the example's keys that name a file or folder (relative to the config's folder)
PATH_KEYS = ("data_dir", "inbox", "labels_inbox", "initial_model", "reference", "training_data")


def write_example_config(path: Path, cwd: Path | None = None) -> None:
    """The example config, its relative paths rewritten so that they point where they
    would from the working folder: `perfwatch init` writes config/perfwatch.toml, and an
    unedited config keeps its store and folders beside config/, not inside it."""
    import os
    import re

    path.parent.mkdir(parents=True, exist_ok=True)
    text = example_config()
    up = Path(os.path.relpath((cwd or Path.cwd()).resolve(), path.parent.resolve()))
    if up != Path("."):
        keys = "|".join(PATH_KEYS)
        text = re.sub(
            rf'^(#? ?(?:{keys}) = ")([^/"][^"]*)"',
            lambda m: f'{m.group(1)}{(up / m.group(2)).as_posix()}"',
            text,
            flags=re.MULTILINE,
        )
        text = re.sub(
            r'^(store = "sqlite:///)([^/"][^"]*)"',
            lambda m: f'{m.group(1)}{(up / m.group(2)).as_posix()}"',
            text,
            flags=re.MULTILINE,
        )
    path.write_text(text, encoding="utf-8")
