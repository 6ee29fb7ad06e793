"""Ships perfwatch.example.toml inside the package, so `perfwatch init` can write it."""
