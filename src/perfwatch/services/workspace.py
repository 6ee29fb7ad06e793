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


def write_example_config(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(example_config(), encoding="utf-8")
