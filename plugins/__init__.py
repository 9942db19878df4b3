"""zoo's built-in plugins (installed as `zoo_plugins`). Each module is an ordinary plugin,
declared in zoo's own pyproject.toml under the `zoo` entry-point group, exactly as a
third-party package would be. None imports torch until a factory runs."""
