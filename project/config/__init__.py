"""Configuration: the YAML configs that ship with the project, and the checks every --config file passes first."""
